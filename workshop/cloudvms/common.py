"""What every provider does the same way: the cost estimate, the wait for SSH, and which
of a student's VMs to keep when two ``up``s made two."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from workshop.cloudvms.model import Plan, Progress, SshProbe, UpReport, Vm
from workshop.cloudvms.spec import CloudCohortSpec

T = TypeVar("T")
SSH_PROBES_AT_ONCE = 64


def estimate(plan: Plan, spec: CloudCohortSpec, instance_type: str, students: int) -> None:
    """The plan's cost: the cohort file's hourly price x VMs (x hours), when it has one."""
    price = spec.price(instance_type)
    if price is not None:
        plan.hourly_usd = round(price * students, 2)
        plan.total_usd = round(price * students * spec.hours, 2)


def wait_for_ssh(vms: list[Vm], probe: SshProbe, timeout: float, running: str) -> None:
    """Set each VM's ``ssh_ok``: whether its SSH server answered, all within one deadline
    (a silent VM does not take the whole timeout in turn). A VM not in the provider's
    ``running`` state, or without an address, is not waited for."""
    deadline = time.monotonic() + timeout

    def answers(vm: Vm) -> bool:
        if vm.state != running or not vm.public_ip:
            return False
        return probe(str(vm.public_ip), max(0.0, deadline - time.monotonic()))

    with ThreadPoolExecutor(max_workers=max(1, min(SSH_PROBES_AT_ONCE, len(vms)))) as pool:
        for vm, answered in zip(vms, pool.map(answers, vms), strict=True):
            vm.ssh_ok = answered


def beyond_the_oldest(
    items: Iterable[T], student: Callable[[T], str], age: Callable[[T], Any]
) -> list[T]:
    """Every VM but the oldest of each student's (two ``up``s at once may both make one)."""
    by_student: dict[str, list[T]] = {}
    for item in items:
        by_student.setdefault(student(item), []).append(item)
    return [item for group in by_student.values() for item in sorted(group, key=age)[1:]]


def create_missing(
    report: UpReport,
    students: list[str],
    have: set[str],
    launch: Callable[[str], Any],
    *,
    workers: int,
    progress: Progress,
) -> dict[str, Any]:
    """Launch the VM of each student not in ``have``, ``workers`` at a time. A ``str``
    outcome is why the student has none (``report.failed``); any other is their VM's
    (``report.created``, and returned by student)."""
    missing = [student for student in students if student not in have]
    progress(f"{len(have)} VMs already there; creating {len(missing)}")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(launch, missing))
    made: dict[str, Any] = {}
    for student, outcome in zip(missing, outcomes, strict=True):
        if isinstance(outcome, str):
            report.failed[student] = outcome
        else:
            report.created.append(student)
            made[student] = outcome
    return made
