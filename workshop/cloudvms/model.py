"""What a cloud provider's ``plan``, ``up``, ``vms`` and ``down`` return (any provider;
the outline they share is ``base.CloudProvider``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

SshProbe = Callable[[str, float], bool]
Progress = Callable[[str], None]


@dataclass
class Plan:
    """What the cohort needs, what the account has, and what it would cost."""

    provider: str
    region: str
    students: int
    image: str = ""
    root_device: str = ""
    instance_type: str = ""
    offered: dict[str, list[str]] = field(default_factory=dict)  # type -> zones offering it
    vcpus_per_vm: int = 0
    gpus_per_vm: int = 0
    quota_code: str = ""
    quota_name: str = ""
    quota_vcpus: float = 0.0
    used_vcpus: int = 0
    needed_vcpus: int = 0
    hourly_usd: float | None = None
    total_usd: float | None = None
    hours: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fits": self.fits}


@dataclass
class Vm:
    student: str
    instance_id: str
    instance_type: str
    zone: str
    state: str
    public_ip: str | None
    ssh_ok: bool | None = None


@dataclass
class UpReport:
    cohort: str
    plan: Plan
    vms: list[Vm] = field(default_factory=list)
    created: list[str] = field(default_factory=list)  # students whose VM this run made
    failed: dict[str, str] = field(default_factory=dict)  # student -> why no VM
    duplicates_removed: list[str] = field(default_factory=list)  # two `up`s at once
    key_pair: str = ""
    security_group: str = ""
    seconds: float = 0.0

    @property
    def ready(self) -> bool:
        return not self.failed and all(vm.ssh_ok for vm in self.vms)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "plan": self.plan.to_dict(),
            "ready": self.ready,
        }


@dataclass
class DownReport:
    cohort: str
    terminated: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    key_pairs: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    # Anything else the provider made for the cohort (GCP firewall rules; Azure networks,
    # NICs, public IPs, resource group), as "kind name".
    other: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # what could not be removed, and why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
