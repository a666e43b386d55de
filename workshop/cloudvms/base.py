"""What every cloud does the same way, once: ``up``'s outline (plan, what every VM needs,
each missing student's VM, duplicates removed, wait until running, wait for SSH) and
``down``'s (the VMs first, then what they held). A provider (``aws.py``, ``gcp.py``,
``azure.py``) keeps only its cloud's primitives: the hooks below."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from workshop.cloudvms.common import create_missing, wait_for_ssh
from workshop.cloudvms.model import DownReport, Plan, Progress, SshProbe, UpReport, Vm
from workshop.cloudvms.spec import CloudCohortSpec
from workshop.errors import WorkshopError


class CloudProvider(ABC):
    """A cohort's VMs in one cloud."""

    # What the cloud calls a VM that is running (SSH is waited for only on those).
    running_state: ClassVar[str] = "running"
    # The admin key types the cloud imports, with the least size in bits each must have.
    key_types: ClassVar[dict[str, int]] = {"ssh-ed25519": 0, "ssh-rsa": 2048}
    # Whether one firewall rule may hold IPv4 and IPv6 networks together.
    mixed_address_families: ClassVar[bool] = False
    name: ClassVar[str] = "cloud"

    def __init__(self, spec: CloudCohortSpec) -> None:
        self.spec = spec

    # --- the outlines -----------------------------------------------------------------

    def up(
        self,
        cohort: str,
        students: list[str],
        *,
        ssh_probe: SshProbe,
        ssh_timeout: float = 300.0,
        progress: Progress = lambda _msg: None,
        workers: int = 8,
        plan: Plan | None = None,
    ) -> UpReport:
        """Each student's VM, running and answering SSH (what is there is kept).
        ``plan``: one the caller just made for these students (else it is made here)."""
        started = time.monotonic()
        self.check_names(cohort, students)
        plan = plan or self.plan(len(students), cohort)
        report = UpReport(cohort, plan)
        if not plan.fits:
            raise WorkshopError("; ".join(plan.problems))
        self.prepare(cohort, report)
        present = {vm.student: vm for vm in self.vms(cohort)}
        launched = create_missing(
            report,
            students,
            self.existing(present),
            lambda student: self.launch(cohort, student, plan, present),
            workers=workers,
            progress=progress,
        )
        report.duplicates_removed = self.remove_duplicates(cohort)
        report.vms = self.wait_running(cohort, launched, report.duplicates_removed, progress)
        progress(f"waiting for SSH on {len(report.vms)} VMs (up to {ssh_timeout:.0f}s)")
        wait_for_ssh(report.vms, ssh_probe, ssh_timeout, running=self.running_state)
        report.seconds = round(time.monotonic() - started, 1)
        return report

    def down(self, cohort: str) -> DownReport:
        """Everything the kit made for the cohort, removed; what could not be, named."""
        report = DownReport(cohort)
        if self.cohort_present(cohort):
            self.delete_vms(cohort, report)  # first: they hold the rest
            self.delete_the_rest(cohort, report)
        return report

    def plan(self, students: int, cohort: str = "") -> Plan:
        """Whether the cohort fits (image, zones, quota) and what it costs; makes nothing.
        What the cloud refuses of the cohort file itself is named here too."""
        plan = self.cloud_plan(students, cohort)
        plan.problems += self.cohort_file_problems()
        return plan

    def cohort_file_problems(self) -> list[str]:
        """The cohort file's settings this cloud refuses (its key, its networks)."""
        problems = []
        try:
            kind, bits = self.spec.public_key_kind()
        except WorkshopError as exc:
            return [str(exc)]
        accepted = ", ".join(
            f"{name} ({least}+ bits)" if least else name for name, least in self.key_types.items()
        )
        if kind not in self.key_types or bits < self.key_types[kind]:
            problems.append(
                f"{self.name}: ssh_public_key is {kind} ({bits} bits), which {self.name} does "
                f"not import: use {accepted} (ssh-keygen -t ed25519 -f ~/.ssh/workshop)"
            )
        families = {":" in cidr for cidr in self.spec.allow_from}
        if len(families) > 1 and not self.mixed_address_families:
            problems.append(
                f"{self.name}: allow_from mixes IPv4 and IPv6 networks, which one firewall "
                "rule cannot hold: list one family"
            )
        return problems

    # --- the provider's primitives ------------------------------------------------------

    @abstractmethod
    def cloud_plan(self, students: int, cohort: str = "") -> Plan:
        """The cloud's own part of the plan: image, zones, quota, cost."""

    @abstractmethod
    def vms(self, cohort: str) -> list[Vm]:
        """The cohort's VMs as the cloud reports them now."""

    def check_names(self, cohort: str, students: list[str]) -> None:  # noqa: B027 (optional)
        """Refuse, before anything is made, a name the cloud would refuse."""

    @abstractmethod
    def prepare(self, cohort: str, report: UpReport) -> None:
        """Make what every VM of the cohort needs (key, firewall, network); note it in
        ``report`` (``key_pair``, ``security_group``)."""

    def existing(self, present: dict[str, Vm]) -> set[str]:
        """The students whose VM is there and need no new one."""
        return set(present)

    @abstractmethod
    def launch(self, cohort: str, student: str, plan: Plan, present: dict[str, Vm]) -> Any:
        """Make ``student``'s VM (zone or type fallback is the provider's): anything but a
        ``str`` for made, a ``str`` saying why not."""

    @abstractmethod
    def remove_duplicates(self, cohort: str) -> list[str]:
        """Two ``up``s at once may each make a student's VM: keep the oldest, return the
        others' ids."""

    def wait_running(
        self, cohort: str, launched: dict[str, Any], removed: list[str], progress: Progress
    ) -> list[Vm]:
        """The cohort's VMs once those still starting run (a VM someone stopped is
        reported as it is, not waited for)."""
        return self.vms(cohort)

    def cohort_present(self, cohort: str) -> bool:
        """Whether anything of the cohort can be there at all."""
        return True

    @abstractmethod
    def delete_vms(self, cohort: str, report: DownReport) -> None:
        """Delete the cohort's VMs (``report.terminated``, or ``report.left`` with why)."""

    @abstractmethod
    def delete_the_rest(self, cohort: str, report: DownReport) -> None:
        """Delete what the VMs held and what ``prepare`` made, in dependency order."""
