"""``workshop cards``: one printable login card per student, HTML and PDF.

A card says where the student's VM is and how to get in (``ssh login@address`` and
their password: students, and only students, may log in with a password; their own SSH
key works too when the roster has one), the classroom registry and their login there
(the same password), and the cloud registry logins ``workshop registries create`` wrote.
A QR code carries the ``ssh://`` address. Cards hold passwords: every file is 0600 in a
0700 directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import segno

from workshop import state
from workshop.cohort import Cohort, ssh_command
from workshop.errors import WorkshopError

TEMPLATES = Path(__file__).with_name("templates")
REGISTRIES_FILE = "registries.json"  # written by `workshop registries create`
ALL_CARDS = "cards.pdf"


@dataclass
class Card:
    cohort: str
    login: str
    name: str
    host: str
    address: str
    ssh: str
    password: str = field(repr=False)
    key_fingerprint: str | None
    registry: str | None
    cloud_registries: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    qr_svg: str = field(default="", repr=False)


@dataclass
class CardsReport:
    directory: str
    files: list[str] = field(default_factory=list)
    students: list[str] = field(default_factory=list)


def fingerprint(public_key: str) -> str | None:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it, for the student to recognise."""
    try:
        blob = base64.b64decode(public_key.split()[1])
    except (IndexError, ValueError):
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def cards(cohort: Cohort, student: str | None = None) -> list[Card]:
    """Every student's card (or one), from the inventory and the cohort's state."""
    found = []
    for host in cohort.hosts:
        for person in host.students:
            if student and person.login != student:
                continue
            password = cohort.password(person.login)
            if password is None:
                raise WorkshopError(
                    f"no password for {person.login} in {cohort.state_dir}/students/: run "
                    "site.yml (its students stage generates them) before printing cards"
                )
            extra = cohort.state_dir / "students" / person.login / REGISTRIES_FILE
            card = Card(
                cohort=cohort.name,
                login=person.login,
                name=person.name,
                host=host.name,
                address=host.address,
                ssh=ssh_command(host, person.login),
                password=password,
                key_fingerprint=fingerprint(person.ssh_public_key or ""),
                registry=cohort.registry,
                cloud_registries=json.loads(extra.read_text()) if extra.exists() else {},
            )
            port = f":{host.port}" if host.port != 22 else ""
            qr = segno.make(f"ssh://{person.login}@{host.address}{port}", error="m")
            card.qr_svg = qr.svg_inline(scale=4, border=2)
            found.append(card)
    if student and not found:
        cohort.host_of(student)  # raises, naming the students there are
    return found


def render_html(items: list[Card]) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = environment.get_template("card.html.j2")
    return template.render(cards=items, qr=jinja2.filters.Markup)


def write(cohort: Cohort, out: Path, *, student: str | None = None) -> CardsReport:
    """``<login>.html`` and ``<login>.pdf`` per student, and ``cards.pdf`` with all of
    them (one per page), in ``out`` (0700; every file 0600)."""
    import weasyprint

    items = cards(cohort, student)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    report = CardsReport(str(out))
    for card in items:
        html = render_html([card])
        state.write_file(out / f"{card.login}.html", html, secret=True)
        state.write_file(
            out / f"{card.login}.pdf", weasyprint.HTML(string=html).write_pdf(), secret=True
        )
        report.files += [str(out / f"{card.login}.html"), str(out / f"{card.login}.pdf")]
        report.students.append(card.login)
    if not student:
        every = weasyprint.HTML(string=render_html(items)).write_pdf()
        state.write_file(out / ALL_CARDS, every, secret=True)
        report.files.append(str(out / ALL_CARDS))
    return report
