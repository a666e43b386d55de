"""``workshop report``: the cohort at a glance, from what the kit recorded.

Provisioning readiness comes from ``state/<cohort>/verify/<host>.json`` (site.yml's verify
stage), each lab's checks from ``state/<cohort>/checks/<lab>/<login>.json`` (``workshop
check``), the practical's scorecards from ``state/<cohort>/grades/<login>.json``
(``workshop grade --cohort``). The report is data (``--json``) or one self-contained HTML
page: inline CSS, no script, no font or image from anywhere, so it opens offline and can
be mailed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from workshop import checking, state
from workshop.classroom import check, grade
from workshop.cohort import Cohort
from workshop.grading import grader
from workshop.labs import catalog

TEMPLATES = Path(__file__).with_name("templates")


@dataclass
class StudentRow:
    login: str
    name: str
    host: str
    address: str
    ready: str  # "ok", the problems, or "not verified"
    labs: dict[str, str] = field(default_factory=dict)  # lab -> verdict


@dataclass
class LabSection:
    name: str
    title: str
    lesson: str
    checks: list[str]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # login -> LabRun dict

    @property
    def passed(self) -> int:
        return sum(1 for run in self.runs.values() if run["status"] == checking.PASSED)


@dataclass
class Report:
    cohort: str
    generated_at: str
    students: list[StudentRow] = field(default_factory=list)
    readiness: dict[str, dict[str, Any]] = field(default_factory=dict)  # host -> verify.json
    labs: list[LabSection] = field(default_factory=list)
    grades: list[dict[str, Any]] = field(default_factory=list)  # Scorecard dicts
    grade_requirements: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for section, lab in zip(data["labs"], self.labs, strict=True):
            section["passed"] = lab.passed
        return data


def build(cohort: Cohort) -> Report:
    """Collect readiness and every lab's last check results for ``cohort``."""
    report = Report(cohort.name, datetime.now(UTC).isoformat(timespec="seconds"))
    verify_dir = cohort.state_dir / "verify"
    for host in cohort.hosts:
        path = verify_dir / f"{host.name}.json"
        if path.exists():
            report.readiness[host.name] = json.loads(path.read_text())
    saved = check.saved_results(cohort)
    for lab in catalog.all_labs():
        section = LabSection(lab.name, lab.title, lab.lesson, [c.name for c in lab.checks])
        for run in saved.get(lab.name, []):
            if run.student:
                section.runs[run.student] = run.to_dict()
        report.labs.append(section)
    report.grades = [card.to_dict() for card in grade.saved_grades(cohort)]
    report.grade_requirements = [c.name for c in grader.requirements()]
    for host in cohort.hosts:
        result = report.readiness.get(host.name)
        if result is None:
            ready = "not verified: run site.yml"
        elif result.get("result") == "ok":
            ready = "ok"
        else:
            ready = "; ".join(result.get("problems", [])) or "failed"
        for student in host.students:
            row = StudentRow(student.login, student.name, host.name, host.address, ready)
            for section in report.labs:
                found = section.runs.get(student.login)
                row.labs[section.name] = found["status"] if found else "not checked"
            report.students.append(row)
    return report


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(report: Report) -> str:
    return _templates().get_template("report.html.j2").render(report=report)


def render_grades_html(cards: list[grader.Scorecard]) -> str:
    """``workshop grade --html``: the scorecards alone, as one self-contained page."""
    return (
        _templates()
        .get_template("grades.html.j2")
        .render(
            grades=[card.to_dict() for card in cards],
            requirements=[c.name for c in grader.requirements()],
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    )


def write_html(report: Report, path: Path) -> Path:
    state.write_file(path, render_html(report))
    return path
