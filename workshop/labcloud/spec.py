"""What a lab cloud cohort is: the validated request (``CloudSpec``), its students, where
its state lives (``CohortPaths``), the names and labels of what it makes, and the reports
``up``, ``status`` and ``down`` return."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workshop import state
from workshop.errors import WorkshopError
from workshop.labcloud import images

MAX_STUDENTS = 40
DEFAULT_COHORT = "lab"
ADMIN_USER = "admin"
BOOT_TIMEOUT = 180
LABEL_COHORT = "org.workshop.cohort"
LABEL_ROLE = "org.workshop.role"
LABEL_REGISTRY_ADDRESS = "org.workshop.registry-address"
LABEL_DISTRO = "org.workshop.distro"
# DNS labels are lower-case letters, digits and inner hyphens; the cohort name also
# prefixes container and volume names ("ws-<cohort>-student-40-docker"), so keep it short.
_COHORT_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,22}[a-z0-9])?$")


Progress = Callable[[str], None]


# VM profiles: states real cloud images are found in, reproduced on the Debian VMs
# (workshop/labcloud/profiles/<name>.sh, run once as root on each VM after it boots).
PROFILES_DIR = Path(__file__).parent / "profiles"
PROFILES = sorted(path.stem for path in PROFILES_DIR.glob("*.sh"))


@dataclass(frozen=True)
class CloudSpec:
    """A validated request for a lab cloud."""

    cohort: str
    students: int
    distro: images.Distro
    profiles: tuple[str, ...] = ()


def validate_spec(
    cohort: str, students: int, distro: str, profiles: list[str] | None = None
) -> CloudSpec:
    """Check every input before anything is created; each error names the fix."""
    validate_cohort_name(cohort)
    unknown = sorted(set(profiles or []) - set(PROFILES))
    if unknown:
        raise WorkshopError(
            f"unknown VM profile {', '.join(unknown)}: choose from {', '.join(PROFILES)}"
        )
    if students < 1:
        raise WorkshopError(f"--students {students}: a cohort needs at least 1 student VM")
    if students > MAX_STUDENTS:
        raise WorkshopError(
            f"--students {students}: one machine runs at most {MAX_STUDENTS} student VMs; "
            "for larger cohorts use real VMs (see README, 'Real VMs')"
        )
    return CloudSpec(cohort, students, images.get_distro(distro), tuple(profiles or ()))


def validate_cohort_name(cohort: str) -> None:
    """Cohort names become DNS labels and Docker names."""
    if not _COHORT_NAME.match(cohort):
        raise WorkshopError(
            f"invalid cohort name {cohort!r}: use 1-24 lower-case letters, digits and "
            "inner hyphens, starting with a letter (e.g. --cohort nov-2026)"
        )


@dataclass
class VmStatus:
    """One student VM as ``status`` (and the end of ``up``) sees it."""

    name: str
    hostname: str
    ip: str
    container: str
    ssh_ok: bool = False
    systemd: str = "not checked"


@dataclass
class RegistryStatus:
    """The classroom registry as ``status`` sees it."""

    address: str
    container: str
    health: str


@dataclass
class CloudReport:
    """What ``up`` or ``status`` found: the VMs, the registry and the images used."""

    cohort: str
    distro: str
    state_dir: str
    vms: list[VmStatus] = field(default_factory=list)
    registry: RegistryStatus | None = None
    images: list[images.BuiltImage] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ready(self) -> bool:
        """Every VM answers SSH with systemd up, and the registry is healthy."""
        vms_ok = all(vm.ssh_ok and vm.systemd in ("running", "degraded") for vm in self.vms)
        registry_ok = self.registry is not None and self.registry.health == "healthy"
        return bool(self.vms) and vms_ok and registry_ok

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, with ``ready`` spelled out."""
        return {**asdict(self), "ready": self.ready}


@dataclass(frozen=True)
class Student:
    """One entry of the lab cloud's roster: one student per VM."""

    login: str
    name: str
    host: str


def roster(students: int) -> list[Student]:
    """The lab cloud's roster: ``student01`` on ``student-01``, and so on."""
    return [
        Student(f"student{index:02d}", f"Student {index:02d}", vm_hostname(index))
        for index in range(1, students + 1)
    ]


@dataclass(frozen=True)
class CohortPaths:
    """Files of one cohort's state directory."""

    root: Path

    @property
    def ssh_key(self) -> Path:
        return self.root / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.root / "ssh" / "known_hosts"

    @property
    def ca_cert(self) -> Path:
        return self.root / "registry" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "registry" / "ca.key"

    @property
    def registry_cert(self) -> Path:
        return self.root / "registry" / "registry.crt"

    @property
    def registry_key(self) -> Path:
        return self.root / "registry" / "registry.key"

    @property
    def registry_credentials(self) -> Path:
        return self.root / "registry" / "credentials.json"

    @property
    def htpasswd(self) -> Path:
        return self.root / "registry" / "htpasswd"

    def student_dir(self, login: str) -> Path:
        """Login card material of one student: SSH key pair and password (0600)."""
        return self.root / "students" / login

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def record(self) -> Path:
        return self.root / "cohort.json"


def paths(cohort: str) -> CohortPaths:
    """The state files of ``cohort``."""
    return CohortPaths(state.cohort_dir(cohort))


def read_record(cohort: str, what: str = "lab cloud") -> dict[str, Any]:
    """What ``up`` recorded for ``cohort`` (registry address, roster, ...); ``what`` names
    the missing piece in the error."""
    try:
        return dict(json.loads(paths(cohort).record.read_text()))
    except FileNotFoundError:
        raise WorkshopError(
            f"cohort {cohort!r} has no {what} here: start it with "
            f"'workshop cloud up --cohort {cohort}'"
        ) from None


def resource_name(cohort: str, suffix: str) -> str:
    return f"ws-{cohort}-{suffix}"


def vm_hostname(index: int) -> str:
    return f"student-{index:02d}"


def cohort_labels(cohort: str, role: str) -> dict[str, str]:
    return {LABEL_COHORT: cohort, LABEL_ROLE: role}


def cohort_filter(cohort: str, role: str | None = None) -> dict[str, list[str]]:
    labels = [f"{LABEL_COHORT}={cohort}"]
    if role:
        labels.append(f"{LABEL_ROLE}={role}")
    return {"label": labels}


@dataclass
class DownReport:
    """What ``down`` removed (empty lists when there was nothing left to remove)."""

    cohort: str
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # This machine's image tags for the cohort's registry (pushes keep their tag, as
    # `docker push` does); the images themselves stay.
    tags: list[str] = field(default_factory=list)
