"""A cohort's registry access: repositories per student, their credentials, and cleanup.

``create`` gives every student on the roster ``<cohort>/<login>/<name>`` repositories in
each registry and the credentials that reach them, written to the student's login-card
directory (``state/<cohort>/students/<login>/registries.json``, 0600). With ``ci``
(``github:OWNER/REPO``, ``{login}`` filled in per student) each cloud also trusts that
repository's GitHub Actions on main to push to the student's repositories through OpenID
Connect, and the variables the Activity 5 workflow reads are written beside the card
(``github-variables.sh``: ``gh variable set`` lines). ``delete`` removes the repositories
(with their images), revokes those credentials and that trust, so nothing keeps costing
money or granting access after the cohort; both are safe to repeat. One student or one
registry failing never stops the others: each gets its own row.
"""

from __future__ import annotations

import json
import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from registries.base import GitHubRepository, Registry, RegistryError, failure
from workshop import state
from workshop.errors import WorkshopError
from workshop.labcloud import spec

WORKERS = 8
CARD_FILE = "registries.json"
CI_FILE = "github-variables.sh"  # beside the card: the workflow's repository variables
RECORD_FILE = "registries.json"  # in the cohort directory: which registries were set up
_CARDS = threading.Lock()  # registries finish in parallel; each card is read, merged, written


@dataclass
class StudentAccess:
    """One student in one registry."""

    student: str
    registry: str
    repositories: list[str] = field(default_factory=list)
    login: str = ""
    expires: str | None = None
    ci: str = ""  # the GitHub repository trusted to push (keyless), if any
    variables: dict[str, str] = field(default_factory=dict)  # what its workflow reads
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Cleanup:
    """What ``delete`` removed from one registry."""

    registry: str
    repositories: list[str] = field(default_factory=list)
    credentials: list[str] = field(default_factory=list)
    ci: list[str] = field(default_factory=list)  # the keyless-CI trust removed
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def roster(cohort: str) -> list[str]:
    """Student logins of a lab cloud cohort, from its record."""
    record = spec.read_record(cohort, "roster")
    return [student["login"] for student in record.get("students", [])]


def student_repositories(cohort: str, login: str, names: list[str]) -> list[str]:
    return [f"{cohort}/{login}/{name}" for name in names]


def _card_path(cohort: str, login: str) -> Any:
    return spec.paths(cohort).student_dir(login) / CARD_FILE


def _update_card(cohort: str, login: str, registry: str, card: dict[str, Any] | None) -> None:
    """Merge one registry's entry into the student's card (0600); None removes it."""
    path = _card_path(cohort, login)
    with _CARDS:
        cards = json.loads(path.read_text()) if path.exists() else {}
        if card is None:
            cards.pop(registry, None)
        else:
            cards[registry] = card
        if cards:
            text = json.dumps(cards, indent=2, sort_keys=True) + "\n"
            state.write_file(path, text, secret=True)
        elif path.exists():
            path.unlink()


def _write_ci_file(cohort: str, login: str) -> None:
    """``gh variable set`` lines for every registry on the student's card that trusts a
    repository (none: no file). Variables, not secrets: none of them is a credential."""
    path = spec.paths(cohort).student_dir(login) / CI_FILE
    card_path = _card_path(cohort, login)
    cards = json.loads(card_path.read_text()) if card_path.exists() else {}
    lines = []
    for registry in sorted(cards):
        ci = cards[registry].get("ci")
        if not ci:
            continue
        lines.append(f"# {registry}: GitHub Actions of {ci['github']} on main (OpenID Connect)")
        lines += [
            f"gh variable set {key} --repo {ci['github']} --body {shlex.quote(value)}"
            for key, value in sorted(ci["variables"].items())
        ]
    if lines:
        state.write_file(path, "#!/bin/sh\nset -e\n" + "\n".join(lines) + "\n", secret=True)
    elif path.exists():
        path.unlink()


def _record(cohort: str) -> dict[str, Any]:
    path = spec.paths(cohort).root / RECORD_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def recorded_registries(cohort: str) -> list[str]:
    """The registries ``create`` set up for this cohort (what ``delete`` cleans by default)."""
    return sorted(_record(cohort))


def _write_record(cohort: str, record: dict[str, Any]) -> None:
    path = spec.paths(cohort).root / RECORD_FILE
    if record:
        state.write_file(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    elif path.exists():
        path.unlink()


def ci_repositories(template: str, logins: list[str]) -> dict[str, GitHubRepository]:
    """Each student's GitHub repository: ``github:ORG/{login}-docker`` gives each their
    own; without ``{login}`` one repository (a cohort's shared one) serves every student."""
    rest = template.replace("{login}", "")
    if "{" in rest or "}" in rest:
        raise RegistryError(
            f"invalid --ci {template!r}: the only placeholder is {{login}}, e.g. "
            "github:acme-ml/{login}-docker"
        )
    return {login: GitHubRepository.parse(template.replace("{login}", login)) for login in logins}


def _one_student(
    cohort: str,
    name: str,
    registry: Registry,
    login: str,
    names: list[str],
    github: GitHubRepository | None,
) -> StudentAccess:
    access = StudentAccess(login, name, student_repositories(cohort, login, names))
    try:
        for repository in access.repositories:
            registry.ensure_repository(repository, student=login)
        card = registry.student_credentials(login, access.repositories)
        if github is not None:
            access.variables = registry.ci_trust(login, access.repositories, github)
            if access.variables:
                access.ci = github.slug
                card = {**card, "ci": {"github": github.slug, "variables": access.variables}}
    except Exception as exc:  # one student's failure is their row; the others go on
        access.error = failure(name, exc)
        return access
    _update_card(cohort, login, name, card)
    access.login = str(card.get("username") or card.get("member") or "")
    access.expires = card.get("expires")
    return access


def capacity_notes(cohort: str, registries: dict[str, Registry], image_mb: float) -> list[str]:
    """What each registry's tier says of the whole cohort pushing an ``image_mb`` image at
    once (Activity 5): a line per registry that would throttle it."""
    students = len(roster(cohort))
    notes = []
    for registry in registries.values():
        try:
            note = registry.capacity(students, image_mb)
        except RegistryError as exc:
            note = str(exc)
        if note:
            notes.append(note)
    return notes


def create(
    cohort: str, registries: dict[str, Registry], names: list[str], ci: str | None = None
) -> list[StudentAccess]:
    """Repositories and credentials for every student in every registry; with ``ci``
    (``github:OWNER/REPO``, ``{login}`` allowed), the keyless CI trust too."""
    logins = roster(cohort)
    github = ci_repositories(ci, logins) if ci else {}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [
            pool.submit(_one_student, cohort, name, registry, login, names, github.get(login))
            for name, registry in registries.items()
            for login in logins
        ]
        results = [future.result() for future in futures]
    for login in logins:
        _write_ci_file(cohort, login)
    record = _record(cohort)
    for name in registries:
        record[name] = {"repositories": names}
    _write_record(cohort, record)
    return results


def _clean(cohort: str, name: str, registry: Registry, logins: list[str]) -> Cleanup:
    cleanup = Cleanup(name)
    try:
        for repository in registry.list_repositories(f"{cohort}/"):
            if registry.delete_repository(repository, force=True):
                cleanup.repositories.append(repository)
        cleanup.credentials = registry.revoke_student_credentials(f"{cohort}/")
        cleanup.ci = registry.revoke_ci_trust(f"{cohort}/")
    except Exception as exc:  # one registry's failure is its row; the others go on
        cleanup.error = failure(name, exc)
        return cleanup
    for login in logins:
        _update_card(cohort, login, name, None)
    return cleanup


def delete(cohort: str, registries: dict[str, Registry]) -> list[Cleanup]:
    """Remove the cohort's repositories and revoke its credentials (safe to repeat)."""
    try:
        logins = roster(cohort)
    except WorkshopError:
        logins = []  # the lab cloud is gone already; the clouds still get cleaned
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [
            pool.submit(_clean, cohort, name, registry, logins)
            for name, registry in registries.items()
        ]
        results = [future.result() for future in futures]
    for login in logins:
        _write_ci_file(cohort, login)
    if spec.paths(cohort).root.exists():
        record = _record(cohort)
        for cleanup in results:
            if cleanup.ok:
                record.pop(cleanup.registry, None)
        _write_record(cohort, record)
    return results
