"""``workshop check``: every student's work on their own VM, checked as that student.

For each student (all at once, a bounded number in flight) the kit logs in to their VM
as its admin and runs the lab's checks as the student (``sudo -u``) against
``~/labs/<lab>/``: their Dockerfile or compose file is built on the classroom's base
images, run, checked and cleaned up (``checking.run_lab``). A VM that does not answer, a
student who has not started, a build that fails: each is that student's own verdict, and
the others finish. Each result is kept in ``state/<cohort>/checks/<lab>/<login>.json``.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paramiko
from invoke.exceptions import CommandTimedOut

from workshop import checking, ssh, state
from workshop.checking.target import TargetUnreachable, VmTarget
from workshop.cohort import Cohort, Host, Student
from workshop.labs import catalog, handout

WORKERS = 8
CHECKS_DIR = "checks"


@dataclass
class CohortCheck:
    cohort: str
    lab: str
    runs: list[checking.LabRun] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(run.passed for run in self.runs)


def results_dir(cohort: Cohort, lab: str) -> Path:
    return cohort.state_dir / CHECKS_DIR / lab


def _check_one(
    cohort: Cohort, lab: catalog.Lab, host: Host, student: Student, starter: dict[str, str]
) -> checking.LabRun:
    try:
        with ssh.connect(host.ssh_target()) as connection:
            found = connection.run(
                shlex.join(["getent", "passwd", student.login]), hide=True, warn=True, timeout=60
            )
            if not found.ok:
                return checking.LabRun(
                    lab.name,
                    f"{student.login}@{host.name}",
                    checking.NOT_DELIVERED,
                    f"no account {student.login} on {host.name}: run site.yml",
                )
            home = found.stdout.strip().split(":")[5]
            target = VmTarget(connection, student.login, f"{home}/labs/{lab.name}", host.name)
            env = checking.classroom_environment(
                cohort.registry or "", student.login, cohort.password(student.login), starter
            )
            return checking.run_lab(lab, target, env)
    except (OSError, EOFError, paramiko.SSHException, TargetUnreachable, CommandTimedOut) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return checking.LabRun(
            lab.name,
            f"{student.login}@{host.name}",
            checking.UNREACHABLE,
            f"{host.name} ({host.address}) does not answer SSH: {reason}",
        )


def check_cohort(
    cohort: Cohort,
    lab_name: str,
    *,
    student: str | None = None,
    workers: int = WORKERS,
    on_result: Callable[[checking.LabRun], None] | None = None,
) -> CohortCheck:
    """Check ``lab_name`` for every student of ``cohort`` (or one), on their VMs."""
    started = time.monotonic()
    lab = catalog.load(lab_name)
    pairs = cohort.seats(student)
    materials = handout.read_materials(cohort.state_dir)
    starter = materials.labs[lab.name].starter if materials and lab.name in materials.labs else {}
    report = CohortCheck(cohort.name, lab.name)

    def one(pair: tuple[Host, Student]) -> checking.LabRun:
        host, person = pair
        when = datetime.now(UTC).isoformat(timespec="seconds")
        run = _check_one(cohort, lab, host, person, starter)
        run.student, run.host, run.checked_at = person.login, host.name, run.checked_at or when
        state.write_file(
            results_dir(cohort, lab.name) / f"{person.login}.json",
            json.dumps(run.to_dict(), indent=2) + "\n",
            secret=True,  # a student's results: theirs and the instructor's only
        )
        if on_result:
            on_result(run)
        return run

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pairs)))) as pool:
        report.runs = list(pool.map(one, pairs))
    report.seconds = round(time.monotonic() - started, 1)
    return report


def saved_results(cohort: Cohort) -> dict[str, list[checking.LabRun]]:
    """Every lab's last results for the cohort, as ``workshop check`` saved them."""
    found: dict[str, list[checking.LabRun]] = {}
    base = cohort.state_dir / CHECKS_DIR
    for path in sorted(base.glob("*/*.json")) if base.is_dir() else []:
        run = checking.LabRun.from_dict(json.loads(path.read_text()))
        found.setdefault(path.parent.name, []).append(run)
    return found
