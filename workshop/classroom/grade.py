"""``workshop grade --cohort C``: every student's practical, graded where it is.

A student's ``~/labs/practical/`` is graded on their own VM, as them (their engine, the
classroom's base images from the registry); a student whose roster entry names a
``practical_repo`` has that repository cloned and graded on this machine instead. All
students at once (a bounded number in flight); one VM that does not answer is that
student's scorecard, the others finish. Scorecards are kept in
``state/<cohort>/grades/<login>.json`` and shown by ``workshop report``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import docker
import paramiko

from workshop import ssh, state
from workshop.checking.target import TargetUnreachable, VmTarget
from workshop.cohort import Cohort, Host, Student
from workshop.errors import WorkshopError
from workshop.grading import grader
from workshop.labs import bases

GRADES_DIR = "grades"


# Where a student's practical is on their VM: the first of these that exists.
PLACES = ("practical", f"labs/{grader.PRACTICAL}")


def _on_vm(cohort: Cohort, host: Host, student: Student, limits: grader.Limits) -> grader.Scorecard:
    where = f"{student.login}@{host.name}:~/labs/{grader.PRACTICAL}"
    try:
        with ssh.connect(host.ssh_target()) as connection:
            found = connection.run(
                shlex.join(["getent", "passwd", student.login]), hide=True, warn=True, timeout=60
            )
            if not found.ok:
                return grader.Scorecard(where, message=f"no account {student.login} on {host.name}")
            home = found.stdout.strip().split(":")[5]
            tested = connection.run(
                " || ".join(f"(test -d {home}/{place} && echo {place})" for place in PLACES),
                hide=True,
                warn=True,
                timeout=60,
            )
            found_place = tested.stdout.strip().splitlines()
            place = found_place[0] if found_place else PLACES[-1]
            where = f"{student.login}@{host.name}:~/{place}"
            target = VmTarget(connection, student.login, f"{home}/{place}", host.name)
            images = {name: bases.build_arg(name, cohort.registry) for name in bases.BASES}
            return grader.grade(target, grader.environment(images, limits, target.builder), where)
    except (OSError, EOFError, paramiko.SSHException, TargetUnreachable) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return grader.Scorecard(
            where, message=f"{host.name} ({host.address}) does not answer SSH: {reason}"
        )


def grade_cohort(
    cohort: Cohort,
    client: docker.DockerClient | None,
    *,
    student: str | None = None,
    jobs: int = 8,
    limits: grader.Limits | None = None,
    on_card: Callable[[grader.Scorecard], None] | None = None,
    trust_extra_ca: bool | None = None,
) -> list[grader.Scorecard]:
    """Grade every student's practical (or one student's)."""
    limits = limits or grader.Limits()
    pairs = cohort.seats(student)
    base_images: dict[str, str] = {}
    if any(person.practical_repo for _, person in pairs):
        if client is None:
            raise WorkshopError("grading a practical_repo needs this machine's Docker engine")
        base_images = grader.local_bases(client, trust_extra_ca=trust_extra_ca)

    def one(pair: tuple[Host, Student]) -> grader.Scorecard:
        host, person = pair
        repository = person.practical_repo
        if repository:
            card = grader.safely(
                repository, lambda: grader.grade_here(repository, base_images, limits)
            )
        else:
            card = grader.safely(person.login, lambda: _on_vm(cohort, host, person, limits))
        card.student, card.host = person.login, host.name
        card.graded_at = card.graded_at or datetime.now(UTC).isoformat(timespec="seconds")
        state.write_file(
            cohort.state_dir / GRADES_DIR / f"{person.login}.json",
            json.dumps(card.to_dict(), indent=2) + "\n",
            secret=True,  # a student's grade: theirs and the instructor's only
        )
        if on_card:
            on_card(card)
        return card

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(pairs)))) as pool:
        return list(pool.map(one, pairs))


def saved_grades(cohort: Cohort) -> list[grader.Scorecard]:
    """The cohort's last scorecards, as ``workshop grade --cohort`` saved them."""
    directory = cohort.state_dir / GRADES_DIR
    if not directory.is_dir():
        return []
    return [
        grader.Scorecard.from_dict(json.loads(path.read_text()))
        for path in sorted(directory.glob("*.json"))
    ]
