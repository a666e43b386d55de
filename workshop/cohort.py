"""A cohort as the kit's commands see it: its Ansible inventory, read and written here.

The inventory is the one description of a cohort, for the lab cloud
(``state/<cohort>/inventory.yml``, written by ``workshop cloud up``), for a cloud's VMs
(written by ``workshop cloud up --provider P``) and for real VMs (``inventory/<cohort>.yml``,
written by hand). ``render_inventory`` is its one writer; Ansible's own inventory and
templating code reads it back, so every value means here what it means to
``ansible-playbook``.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workshop import state
from workshop.errors import WorkshopError
from workshop.ssh import SshTarget

GROUP = "student_vms"
INVENTORY = "inventory.yml"


@dataclass(frozen=True)
class Student:
    login: str
    name: str
    host: str
    ssh_public_key: str | None = None
    practical_repo: str | None = None  # the git URL of their practical, when not on the VM


@dataclass(frozen=True)
class Host:
    """One VM: how the kit's admin reaches it, and who works on it."""

    name: str
    address: str
    user: str
    key_file: Path | None
    known_hosts: Path
    port: int = 22
    students: tuple[Student, ...] = ()

    def ssh_target(self) -> SshTarget:
        return SshTarget(self.address, self.user, self.key_file, self.known_hosts, self.port)


@dataclass(frozen=True)
class Cohort:
    name: str
    inventory: Path
    state_dir: Path
    registry: str | None
    registry_ca: Path | None
    lab_cloud: bool
    hosts: tuple[Host, ...] = field(default_factory=tuple)

    @property
    def students(self) -> list[Student]:
        return [student for host in self.hosts for student in host.students]

    def host_of(self, login: str) -> Host:
        for host in self.hosts:
            if any(student.login == login for student in host.students):
                return host
        known = ", ".join(student.login for student in self.students) or "none"
        raise WorkshopError(f"no student {login!r} in cohort {self.name!r} (students: {known})")

    def seats(self, student: str | None = None) -> list[tuple[Host, Student]]:
        """(VM, student) for every student, or for the one named (unknown: an error)."""
        if student:
            self.host_of(student)
        found = [
            (host, person)
            for host in self.hosts
            for person in host.students
            if not student or person.login == student
        ]
        if not found:
            raise WorkshopError(f"cohort {self.name!r} has no students in its inventory")
        return found

    def password(self, login: str) -> str | None:
        """The student's generated password (``students/<login>/password``), if written."""
        path = self.state_dir / "students" / login / "password"
        return path.read_text().strip() if path.exists() else None


def inventory_path(cohort: str, inventory: Path | None = None) -> Path:
    """The inventory to read: ``inventory`` when given, else the lab cloud's for ``cohort``."""
    path = inventory or state.cohort_dir(cohort) / INVENTORY
    if not path.is_file():
        raise WorkshopError(
            f"no inventory for cohort {cohort!r} at {path}: start a lab cloud with "
            f"'workshop cloud up --cohort {cohort}', or pass --inventory inventory/<cohort>.yml "
            "for real VMs"
        )
    return path


def _known_hosts(ssh_args: str) -> Path:
    found = re.search(r"UserKnownHostsFile=(\S+)", ssh_args or "")
    return Path(found.group(1) if found else "~/.ssh/known_hosts").expanduser()


def load(cohort: str, inventory: Path | None = None) -> Cohort:
    """Read the cohort's inventory with Ansible's inventory and templating code."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    path = inventory_path(cohort, inventory)
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(path)])
    variables = VariableManager(loader=loader, inventory=manager)
    members = manager.get_hosts(GROUP)
    if not members:
        raise WorkshopError(f"{path}: no hosts in the group {GROUP}: list the student VMs there")

    def values(host: Any) -> dict[str, Any]:
        raw = variables.get_vars(host=host)
        templar = Templar(loader=loader, variables=raw)
        wanted = (
            "ansible_host",
            "ansible_user",
            "ansible_port",
            "ansible_ssh_private_key_file",
            "ansible_ssh_common_args",
            "workshop_students",
            "workshop_cohort",
            "workshop_state_dir",
            "workshop_lab_cloud",
            "classroom_registry_address",
            "classroom_registry_ca_file",
        )
        return {key: templar.template(raw[key]) for key in wanted if key in raw}

    hosts, first = [], values(members[0])
    for member in members:
        found = values(member)
        key = found.get("ansible_ssh_private_key_file")
        students = tuple(
            Student(
                _login(path, member.name, entry),
                entry.get("name", entry["login"]),
                member.name,
                entry.get("ssh_public_key"),
                entry.get("practical_repo"),
            )
            for entry in found.get("workshop_students") or []
        )
        hosts.append(
            Host(
                name=member.name,
                address=str(found.get("ansible_host", member.name)),
                user=str(found.get("ansible_user", "root")),
                key_file=Path(key).expanduser() if key else None,
                known_hosts=_known_hosts(str(found.get("ansible_ssh_common_args", ""))),
                port=int(found.get("ansible_port", 22)),
                students=students,
            )
        )
    if "workshop_state_dir" not in first:
        raise WorkshopError(
            f"{path}: workshop_state_dir is not set: name the directory where the cohort's "
            "passwords and results go (see inventory/example-cohort.yml)"
        )
    ca = first.get("classroom_registry_ca_file")
    return Cohort(
        name=str(first.get("workshop_cohort", cohort)),
        inventory=path,
        state_dir=Path(first["workshop_state_dir"]).resolve(),
        registry=first.get("classroom_registry_address") or None,
        # A relative CA path is relative to the checkout, where ansible-playbook runs.
        registry_ca=(state.REPO_ROOT / Path(ca).expanduser()).resolve() if ca else None,
        lab_cloud=bool(first.get("workshop_lab_cloud", False)),
        hosts=tuple(hosts),
    )


# A Linux login as the students role makes it (useradd's rules, as the preflight role
# checks them): nothing else reaches an SSH command line, a sudo -u or a state path.
LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def _login(inventory: Path, host: str, entry: Any) -> str:
    login = str(entry.get("login", "")) if isinstance(entry, dict) else ""
    if not LOGIN.fullmatch(login):
        raise WorkshopError(
            f"{inventory}: host {host}: workshop_students entry {entry!r} has no valid login "
            "(lower-case letters, digits, '_' and '-', starting with a letter or '_', 32 at "
            "most): fix the inventory"
        )
    return login


def ssh_command(host: Host, login: str) -> str:
    """What a student types to log in (for their card)."""
    port = f" -p {host.port}" if host.port != 22 else ""
    return f"ssh{port} {shlex.quote(login)}@{host.address}"


# --- writing it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """What a cohort's inventory says, before it is written: how the admin reaches every
    VM, who works on which, and what site.yml is to install there."""

    name: str
    state_dir: Path
    admin_user: str
    key_file: Path
    ssh_args: str  # ansible_ssh_common_args: known hosts, how strictly, which key
    lab_cloud: bool
    registry: str  # the classroom registry's address ("" when there is none yet)
    registry_ca: Path | None
    docker_install_source: str  # the docker role's: official (a cloud) or distro
    extra_ca_certificates: tuple[str, ...]
    lab_images: tuple[str, ...]
    hosts: tuple[tuple[str, str, tuple[Student, ...]], ...]  # (VM name, address, students)
    written_by: str  # the command whose rerun rewrites it


def render_inventory(layout: Layout) -> str:
    """The cohort's Ansible YAML inventory (the shape README's 'Real VMs' shows)."""
    variables: dict[str, Any] = {
        "ansible_user": layout.admin_user,
        "ansible_ssh_private_key_file": str(layout.key_file),
        "ansible_ssh_common_args": layout.ssh_args,
        "workshop_cohort": layout.name,
        "workshop_lab_cloud": layout.lab_cloud,
        "workshop_state_dir": str(layout.state_dir),
        "workshop_lab_images": list(layout.lab_images),
        "classroom_registry_address": layout.registry,
    }
    if layout.registry_ca:
        variables["classroom_registry_ca_file"] = str(layout.registry_ca)
    variables["docker_install_source"] = layout.docker_install_source
    variables["docker_extra_ca_certificates"] = list(layout.extra_ca_certificates)
    hosts = {
        name: {"ansible_host": address, "workshop_students": [_entry(s) for s in students]}
        for name, address, students in layout.hosts
    }
    inventory = {"all": {"vars": variables, "children": {GROUP: {"hosts": hosts}}}}
    header = (
        f"# Written by `{layout.written_by}` for cohort {layout.name}: {len(hosts)} VMs. "
        "Rerun it instead of editing.\n"
    )
    return header + yaml.safe_dump(inventory, sort_keys=False)


def _entry(student: Student) -> dict[str, str]:
    entry = {"login": student.login, "name": student.name}
    if student.ssh_public_key:
        entry["ssh_public_key"] = student.ssh_public_key
    return entry
