"""``workshop deploy``: each lab's student copy into every student's ``~/labs/<lab>/``.

The archives are (re)built here from the labs in this checkout, then the ``materials``
stage of site.yml (the ``lab_materials`` role) delivers them: a file a student already
has is never replaced, so a second deploy adds nothing and keeps their edits.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from workshop import playbook, trust
from workshop.cohort import Cohort
from workshop.errors import WorkshopError
from workshop.labs import catalog, handout

DELIVER_TASK = "Add each lab's missing files to each student's copy (their own files stay)."


@dataclass
class Delivery:
    """One lab for one student: what was added, and what was already there."""

    host: str
    student: str
    lab: str
    status: str  # delivered | up to date | unreachable | failed
    added: int = 0
    present: int = 0
    solution_added: int | None = None
    message: str = ""


@dataclass
class DeployReport:
    cohort: str
    labs: list[str]
    solution: bool
    rows: list[Delivery] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(row.status in ("delivered", "up to date") for row in self.rows)


def select_labs(names: list[str] | None) -> list[catalog.Lab]:
    """The labs named (directory or short names), or all of them."""
    return [catalog.load(name) for name in names] if names else catalog.all_labs()


def build(cohort: Cohort) -> handout.Materials:
    """Every lab's archives, from this checkout, into the cohort's materials/."""
    return handout.build_materials(cohort.state_dir, catalog.all_labs(), trust.extra_ca_bundle())


def deploy(
    cohort: Cohort,
    lab_names: list[str] | None = None,
    *,
    student: str | None = None,
    solution: bool = False,
) -> DeployReport:
    """Deliver ``lab_names`` (all when None) to every student, or to ``student`` only."""
    started = time.monotonic()
    labs = [lab.name for lab in select_labs(lab_names)]
    host = cohort.host_of(student).name if student else None
    build(cohort)
    run = playbook.run(
        "playbooks/materials.yml",
        cohort.inventory,
        {
            "lab_materials_labs": labs,
            "lab_materials_solution": solution,
            "lab_materials_only": [student] if student else [],
        },
        limit=host,
    )
    report = DeployReport(cohort.name, labs, solution)
    delivered = run.results(DELIVER_TASK)
    for vm in cohort.hosts:
        if host and vm.name != host:
            continue
        problem = run.problem(vm.name)
        for person in vm.students:
            if student and person.login != student:
                continue
            found = _deliveries(delivered.get(vm.name, {}), person.login)
            for lab in labs:
                row = Delivery(vm.name, person.login, lab, "failed")
                mine = found.get(f"labs/{lab}")
                if mine is not None:
                    row.added, row.present = len(mine["added"]), mine["present"]
                    row.status = "delivered" if row.added else "up to date"
                    answer = found.get(f"labs/{lab}/solution")
                    row.solution_added = len(answer["added"]) if answer else None
                elif problem:
                    row.status = "unreachable" if problem.startswith("unreachable") else "failed"
                    row.message = problem
                else:
                    row.message = "not delivered (see ansible-playbook playbooks/materials.yml)"
                report.rows.append(row)
    if not report.rows and run.rc != 0:
        raise WorkshopError(f"delivery failed: {run.problem(host or '') or 'see the playbook'}")
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _deliveries(result: dict, login: str) -> dict[str, dict]:
    """The delivery helper's report for ``login``: destination -> {added, present}."""
    for item in result.get("results", []):
        if item.get("item", {}).get("login") == login:
            try:
                return {entry["dest"]: entry for entry in json.loads(item.get("stdout", ""))}
            except (ValueError, TypeError, KeyError):
                return {}
    return {}
