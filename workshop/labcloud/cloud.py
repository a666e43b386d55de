"""Bring a simulated cohort up, report on it, and take it down again.

``up`` is idempotent: it builds only missing images, creates only missing containers,
volumes and keys, and starts what is stopped. Everything it creates carries the label
``org.workshop.cohort=<cohort>``, and ``down`` removes exactly what carries that label
(plus the cohort's state directory and the host's trust in its registry CA).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import re
import shutil
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml
from docker.models.containers import Container
from docker.types import EndpointConfig

from workshop import cohort as cohorts
from workshop import state, trust
from workshop.engine import docker_client
from workshop.errors import WorkshopError
from workshop.labcloud import images, pki
from workshop.ssh import SshTarget, connect, probe_systemd

MAX_STUDENTS = 40
DEFAULT_COHORT = "lab"
ADMIN_USER = "admin"
REGISTRY_PORT = 5000
REGISTRY_USER = "instructor"
HELLO_REPOSITORY = "classroom/hello"
HELLO_TAG = "1"
BOOT_TIMEOUT = 180

LABEL_COHORT = "org.workshop.cohort"
LABEL_ROLE = "org.workshop.role"
LABEL_REGISTRY_ADDRESS = "org.workshop.registry-address"
LABEL_DISTRO = "org.workshop.distro"

# DNS labels are lower-case letters, digits and inner hyphens; the cohort name also
# prefixes container and volume names ("ws-<cohort>-student-40-docker"), so keep it short.
_COHORT_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,22}[a-z0-9])?$")
# Lab cloud subnets come out of this pool, one /24 per cohort.
_SUBNET_TRIES = 5
_SUBNET_POOL = ipaddress.IPv4Network(os.environ.get("WORKSHOP_LABCLOUD_POOL", "10.213.0.0/16"))
_DOCKER_CERTS_DIR = Path(os.environ.get("WORKSHOP_DOCKER_CERTS_DIR", "/etc/docker/certs.d"))

# Everything a systemd container needs, short of --privileged (which this kind of
# sandbox refuses: it lacks CAP_SYS_RESOURCE). See ENVIRONMENT.md.
_SYSTEMD_CONTAINER: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
    "cgroupns": "host",
    "tmpfs": {"/run": "rw,exec", "/run/lock": "rw"},
}

# Devices every cloud VM has and a systemd container lacks: TUN (rootless Docker's
# network, slirp4netns) and FUSE (its storage, fuse-overlayfs).
_VM_DEVICES = ("/dev/net/tun", "/dev/fuse")

Progress = Callable[[str], None]


def _vm_devices() -> list[str]:
    """The VM devices this machine has, passed through as they are on a cloud VM."""
    return [f"{path}:{path}:rwm" for path in _VM_DEVICES if Path(path).exists()]


# VM profiles: states real cloud images are found in, reproduced on the Debian VMs
# (workshop/labcloud/profiles/<name>.sh, run once as root on each VM after it boots).
PROFILES_DIR = Path(__file__).parent / "profiles"
PROFILES = sorted(path.stem for path in PROFILES_DIR.glob("*.sh"))
_PROFILE_MARKERS = "/var/lib/workshop-profiles"


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
        Student(f"student{index:02d}", f"Student {index:02d}", _hostname(index))
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


def _name(cohort: str, suffix: str) -> str:
    return f"ws-{cohort}-{suffix}"


def _hostname(index: int) -> str:
    return f"student-{index:02d}"


def _labels(cohort: str, role: str) -> dict[str, str]:
    return {LABEL_COHORT: cohort, LABEL_ROLE: role}


def _cohort_filter(cohort: str, role: str | None = None) -> dict[str, list[str]]:
    labels = [f"{LABEL_COHORT}={cohort}"]
    if role:
        labels.append(f"{LABEL_ROLE}={role}")
    return {"label": labels}


def _vm_ip(subnet: ipaddress.IPv4Network, index: int) -> str:
    return str(subnet.network_address + 10 + index)


def _registry_ip(subnet: ipaddress.IPv4Network) -> str:
    return str(subnet.network_address + 2)


# --- up -------------------------------------------------------------------------------


def up(spec: CloudSpec, progress: Progress = lambda _msg: None) -> CloudReport:
    """Create or complete the lab cloud for ``spec`` and wait until it is ready."""
    started = time.monotonic()
    client = docker_client()
    cohort = spec.cohort
    files = paths(cohort)
    existing = _vm_containers(client, cohort)
    _check_compatible(spec, existing)

    progress(f"images: student VM ({spec.distro.key}), classroom registry, classroom/hello")
    vm_image = images.build_image(client, "student-vm", spec.distro)
    registry_image = images.build_image(client, "classroom-registry", spec.distro)
    hello_image = images.build_image(client, "hello", spec.distro)

    progress(f"state: {files.root}")
    _ensure_secrets(cohort, files)
    students = roster(spec.students)
    logins_changed = _ensure_students(files, students)
    network, subnet = _ensure_network(client, cohort)

    registry_address = f"{_registry_ip(subnet)}:{REGISTRY_PORT}"
    progress(f"classroom registry: https://{registry_address}")
    _ensure_registry(
        client, cohort, files, network.name, subnet, registry_image.tag, logins_changed
    )
    _trust_on_host(registry_address, files.ca_cert.read_bytes())

    progress(f"student VMs: {spec.students}")
    public_key = files.ssh_key.with_suffix(".pub").read_bytes()
    vms = [
        _ensure_vm(
            client, cohort, index, network.name, subnet, vm_image.tag, spec.distro.key, public_key
        )
        for index in range(1, spec.students + 1)
    ]
    _write_known_hosts(client, files, vms)

    progress(f"waiting for SSH and systemd on {len(vms)} VMs (up to {BOOT_TIMEOUT}s)")
    statuses = _probe_vms(files, vms, wait_seconds=BOOT_TIMEOUT)
    registry = _wait_registry_healthy(client, cohort, registry_address)
    hello = _seed_image(
        client, files, registry_address, hello_image.tag, HELLO_REPOSITORY, HELLO_TAG
    )

    # Images `workshop prepare` recorded stay: a second `up` must not forget them.
    previous = _previous_lab_images(cohort)
    lab_images = [hello, *(ref for ref in previous if not _same_repository(ref, hello))]
    record = {
        "cohort": cohort,
        "distro": spec.distro.key,
        "subnet": str(subnet),
        "network": network.name,
        "registry": {"address": registry_address, "user": REGISTRY_USER},
        "lab_images": lab_images,
        "vms": [{"hostname": vm.hostname, "ip": vm.ip, "container": vm.container} for vm in vms],
        "students": [asdict(student) for student in students],
        "profiles": list(spec.profiles),
    }
    state.write_file(files.record, json.dumps(record, indent=2) + "\n")
    inventory = render_inventory(cohort, files, vms, registry_address, students, lab_images)
    state.write_file(files.inventory, inventory)
    state.point_current_at(cohort)
    if spec.profiles:  # after the record: a cohort whose profile failed can still go down
        progress(f"VM profiles: {', '.join(spec.profiles)}")
        _apply_profiles(files, [vm for vm in statuses if vm.ssh_ok], spec.profiles)
    return CloudReport(
        cohort=cohort,
        distro=spec.distro.key,
        state_dir=str(files.root),
        vms=statuses,
        registry=registry,
        images=[vm_image, registry_image, hello_image],
        seconds=round(time.monotonic() - started, 1),
    )


def _previous_lab_images(cohort: str) -> list[str]:
    try:
        return list(read_record(cohort).get("lab_images", []))
    except WorkshopError:
        return []


def _same_repository(one: str, other: str) -> bool:
    """``host/repo:tag@digest`` references naming the same repository and tag."""
    return one.split("@")[0] == other.split("@")[0]


def record_lab_images(cohort: str, references: list[str]) -> list[str]:
    """Add images (``host/repo:tag@sha256:...``) to what the cohort's VMs preload, replacing
    older digests of the same tags; rewrite the inventory. Returns the new list."""
    record = read_record(cohort)
    kept = [
        ref
        for ref in record.get("lab_images", [])
        if not any(_same_repository(ref, new) for new in references)
    ]
    record["lab_images"] = [*kept, *references]
    files = paths(cohort)
    state.write_file(files.record, json.dumps(record, indent=2) + "\n")
    vms = [
        VmStatus(vm["container"], vm["hostname"], vm["ip"], vm["container"]) for vm in record["vms"]
    ]
    students = [Student(**student) for student in record.get("students", [])]
    inventory = render_inventory(
        cohort, files, vms, record["registry"]["address"], students, record["lab_images"]
    )
    state.write_file(files.inventory, inventory)
    return list(record["lab_images"])


def _vm_containers(client: docker.DockerClient, cohort: str) -> list[Container]:
    found = client.containers.list(all=True, filters=_cohort_filter(cohort, "vm"))
    return sorted(found, key=lambda c: c.name)


def _check_compatible(spec: CloudSpec, existing: list[Container]) -> None:
    if not existing:
        return
    running = {c.labels.get(LABEL_DISTRO) for c in existing}
    if running != {spec.distro.key}:
        distros = ", ".join(sorted(filter(None, running)))
        raise WorkshopError(
            f"cohort {spec.cohort!r} already runs {distros} VMs: take it down first "
            f"('workshop cloud down --cohort {spec.cohort}') or pass --distro {distros}"
        )
    if len(existing) > spec.students:
        raise WorkshopError(
            f"cohort {spec.cohort!r} already has {len(existing)} VMs and up never removes one: "
            f"pass --students {len(existing)} or more, or take it down first"
        )


def _ensure_secrets(cohort: str, files: CohortPaths) -> None:
    """Generate the cohort's SSH key, CA and registry password once; reuse them after."""
    if not files.ssh_key.exists():
        keys = pki.ssh_keypair(f"workshop-{cohort}")
        state.write_file(files.ssh_key.with_suffix(".pub"), keys.public)
        state.write_file(files.ssh_key, keys.private, secret=True)
    if not files.ca_cert.exists():
        ca = pki.certificate_authority(cohort)
        state.write_file(files.ca_key, ca.private, secret=True)
        state.write_file(files.ca_cert, ca.public, secret=True)
    if not files.registry_credentials.exists():
        credentials = {"username": REGISTRY_USER, "password": pki.password()}
        state.write_file(files.registry_credentials, json.dumps(credentials) + "\n", secret=True)


def _ensure_students(files: CohortPaths, students: list[Student]) -> bool:
    """Give every student an SSH key and a password, and the registry an htpasswd entry.

    The password file is the one Ansible's ``password`` lookup reads (the students role),
    so the Linux account and the registry login share one password per student.
    Returns whether the registry's htpasswd changed (a student was added).
    """
    for student in students:
        directory = files.student_dir(student.login)
        if not (directory / "id_ed25519").exists():
            keys = pki.ssh_keypair(f"{student.login}@{files.root.name}")
            state.write_file(directory / "id_ed25519.pub", keys.public)
            state.write_file(directory / "id_ed25519", keys.private, secret=True)
        if not (directory / "password").exists():
            state.write_file(directory / "password", pki.password(), secret=True)
    users = [REGISTRY_USER, *(student.login for student in students)]
    if files.htpasswd.exists():
        present = [line.split(":", 1)[0] for line in files.htpasswd.read_text().splitlines()]
        if present == users:
            return False
    instructor = json.loads(files.registry_credentials.read_text())["password"]
    lines = [pki.htpasswd_line(REGISTRY_USER, instructor)]
    for student in students:
        password = (files.student_dir(student.login) / "password").read_text().strip()
        lines.append(pki.htpasswd_line(student.login, password))
    state.write_file(files.htpasswd, "".join(lines), secret=True)
    return True


def _ensure_network(client: docker.DockerClient, cohort: str) -> tuple[Any, ipaddress.IPv4Network]:
    found = client.networks.list(filters=_cohort_filter(cohort, "network"))
    if found:
        network = client.networks.get(found[0].id)
        subnet = network.attrs["IPAM"]["Config"][0]["Subnet"]
        return network, ipaddress.IPv4Network(subnet)
    # Another cohort's `up` on this engine may take the same free /24 between our look and
    # our create: Docker refuses the second ("Pool overlaps"), so look again.
    for attempt in range(1, _SUBNET_TRIES + 1):
        subnet = _free_subnet(client)
        try:
            network = client.networks.create(
                _name(cohort, "net"),
                driver="bridge",
                ipam=docker.types.IPAMConfig(
                    pool_configs=[
                        docker.types.IPAMPool(
                            subnet=str(subnet), gateway=str(subnet.network_address + 1)
                        )
                    ]
                ),
                labels=_labels(cohort, "network"),
            )
        except docker.errors.APIError as exc:
            if "overlaps" not in str(exc) or attempt == _SUBNET_TRIES:
                raise
            time.sleep(0.5 * attempt)
        else:
            return network, subnet
    raise AssertionError("the loop returns or raises")  # for mypy


def _free_subnet(client: docker.DockerClient) -> ipaddress.IPv4Network:
    taken = []
    for network in client.networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if "Subnet" in config and ":" not in config["Subnet"]:
                taken.append(ipaddress.IPv4Network(config["Subnet"]))
    for candidate in _SUBNET_POOL.subnets(new_prefix=24):
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise WorkshopError(
        f"no free /24 left in {_SUBNET_POOL} for a new cohort: take an old cohort down, "
        "or set WORKSHOP_LABCLOUD_POOL to another private range"
    )


def _tar(entries: dict[str, tuple[bytes, int, int]]) -> bytes:
    """A tar archive of ``path -> (content, mode, uid)`` for ``put_archive``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, (content, mode, uid) in entries.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid = len(content), mode, uid, uid
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _registry_config() -> str:
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": "/var/lib/docker-registry"},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": f":{REGISTRY_PORT}",
            "tls": {
                "certificate": "/etc/docker/registry/tls/registry.crt",
                "key": "/etc/docker/registry/tls/registry.key",
            },
            "debug": {"addr": "127.0.0.1:5001"},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "auth": {
            "htpasswd": {"realm": "classroom-registry", "path": "/etc/docker/registry/htpasswd"}
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    return yaml.safe_dump(config, sort_keys=False)


def _ensure_registry(
    client: docker.DockerClient,
    cohort: str,
    files: CohortPaths,
    network: str,
    subnet: ipaddress.IPv4Network,
    image: str,
    logins_changed: bool,
) -> Container:
    name = _name(cohort, "registry")
    ip = _registry_ip(subnet)
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        container = None
    # By membership: the image may carry other tags too (a push keeps its target tag).
    if container is not None and image not in container.image.tags:
        # The registry image changed (a new recipe): replace the container, keep the volume.
        container.remove(force=True)
        container = None
    if container is None:
        if not files.registry_cert.exists() or not pki.certificate_covers(
            files.registry_cert.read_bytes(), ip
        ):
            ca = pki.KeyPair(files.ca_key.read_bytes(), files.ca_cert.read_bytes())
            cert = pki.server_certificate(ca, ["registry", "localhost"], [ip, "127.0.0.1"])
            state.write_file(files.registry_key, cert.private, secret=True)
            state.write_file(files.registry_cert, cert.public, secret=True)
        volume = _name(cohort, "registry-data")
        if not client.volumes.list(filters={"name": volume}):
            client.volumes.create(volume, labels=_labels(cohort, "registry-data"))
        container = client.containers.create(
            image,
            name=name,
            hostname="registry",
            labels={**_labels(cohort, "registry"), LABEL_REGISTRY_ADDRESS: f"{ip}:{REGISTRY_PORT}"},
            volumes={volume: {"bind": "/var/lib/docker-registry", "mode": "rw"}},
            restart_policy={"Name": "unless-stopped"},
            network=network,
            networking_config={
                network: EndpointConfig("1.41", aliases=["registry"], ipv4_address=ip)
            },
            detach=True,
        )
        owner = _image_user_uid(client, image)
        container.put_archive(
            "/etc/docker/registry",
            _tar(
                {
                    "config.yml": (_registry_config().encode(), 0o640, owner),
                    "htpasswd": (files.htpasswd.read_bytes(), 0o600, owner),
                    "tls/registry.crt": (files.registry_cert.read_bytes(), 0o644, owner),
                    "tls/registry.key": (files.registry_key.read_bytes(), 0o600, owner),
                }
            ),
        )
    elif logins_changed:
        # The registry reads htpasswd when it starts: copy the new file in and restart.
        owner = _image_user_uid(client, image)
        container.put_archive(
            "/etc/docker/registry", _tar({"htpasswd": (files.htpasswd.read_bytes(), 0o600, owner)})
        )
        container.restart(timeout=10)
    if container.status != "running":
        container.start()
    return container


def _image_user_uid(client: docker.DockerClient, image: str) -> int:
    """The numeric uid of the image's USER, read from the image's own /etc/passwd."""
    user = client.api.inspect_image(image)["Config"].get("User") or "root"
    container = client.containers.create(
        image, ["id", "-u", user], user="root", network_mode="none"
    )
    try:
        container.start()
        container.wait(timeout=60)
        output = container.logs(stdout=True, stderr=False)
    finally:
        # v=True: the image declares a VOLUME, whose anonymous volume must go too.
        container.remove(force=True, v=True)
    return int(output.decode().strip())


def _ensure_vm(
    client: docker.DockerClient,
    cohort: str,
    index: int,
    network: str,
    subnet: ipaddress.IPv4Network,
    image: str,
    distro: str,
    public_key: bytes,
) -> VmStatus:
    hostname = _hostname(index)
    name = _name(cohort, hostname)
    ip = _vm_ip(subnet, index)
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        volume = f"{name}-docker"
        if not client.volumes.list(filters={"name": volume}):
            client.volumes.create(volume, labels=_labels(cohort, "vm-docker"))
        host_config = client.api.create_host_config(
            # Docker inside the VM needs a real (non-overlay) file system for overlay2.
            binds={
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                volume: {"bind": "/var/lib/docker", "mode": "rw"},
            },
            restart_policy={"Name": "unless-stopped"},
            network_mode=network,
            devices=_vm_devices(),
            **_SYSTEMD_CONTAINER,
        )
        # `--security-opt systempaths=unconfined`, which the CLI expands and the API does
        # not know: /proc/sys writable, as on a VM. Docker inside the VM sets per-network
        # sysctls (IPv6 off on container interfaces) and cannot start containers without.
        host_config["MaskedPaths"] = []
        host_config["ReadonlyPaths"] = []
        endpoint = client.api.create_endpoint_config(aliases=[hostname], ipv4_address=ip)
        created = client.api.create_container(
            image,
            name=name,
            hostname=hostname,
            labels={**_labels(cohort, "vm"), LABEL_DISTRO: distro},
            host_config=host_config,
            networking_config=client.api.create_networking_config({network: endpoint}),
            detach=True,
        )
        container = client.containers.get(created["Id"])
        host_key = pki.ssh_keypair(f"root@{hostname}")
        container.put_archive(
            "/",
            _tar(
                {
                    "home/admin/.ssh/authorized_keys": (public_key, 0o600, 1000),
                    "etc/ssh/ssh_host_ed25519_key": (host_key.private, 0o600, 0),
                    "etc/ssh/ssh_host_ed25519_key.pub": (host_key.public, 0o644, 0),
                }
            ),
        )
    if container.status != "running":
        container.start()
    return VmStatus(name=name, hostname=hostname, ip=ip, container=container.short_id)


def _read_host_key(client: docker.DockerClient, container: str) -> str:
    """The VM's ed25519 host public key, read from its file system (no SSH needed)."""
    stream, _ = client.containers.get(container).get_archive("/etc/ssh/ssh_host_ed25519_key.pub")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.extractfile("ssh_host_ed25519_key.pub")
        assert member is not None
        key_type, key, *_ = member.read().decode().split()
    return f"{key_type} {key}"


def _write_known_hosts(
    client: docker.DockerClient, files: CohortPaths, vms: list[VmStatus]
) -> None:
    lines = [f"{vm.ip},{vm.hostname} {_read_host_key(client, vm.container)}\n" for vm in vms]
    state.write_file(files.known_hosts, "".join(lines))


def _ssh_target(files: CohortPaths, vm: VmStatus) -> SshTarget:
    return SshTarget(vm.ip, ADMIN_USER, files.ssh_key, files.known_hosts)


def _probe_vms(files: CohortPaths, vms: list[VmStatus], *, wait_seconds: float) -> list[VmStatus]:
    def probe(vm: VmStatus) -> VmStatus:
        result = probe_systemd(_ssh_target(files, vm), wait_seconds=wait_seconds)
        return VmStatus(vm.name, vm.hostname, vm.ip, vm.container, result.ssh_ok, result.systemd)

    if not vms:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(vms))) as pool:
        return list(pool.map(probe, vms))


def _apply_profiles(files: CohortPaths, vms: list[VmStatus], profiles: tuple[str, ...]) -> None:
    """Run each profile's script once as root on each VM (a marker file remembers it)."""

    def apply(vm: VmStatus) -> str | None:
        with connect(_ssh_target(files, vm)) as connection:
            scripts = f"/home/{ADMIN_USER}/workshop-profiles"
            connection.run(f"mkdir -p {scripts}", hide=True)
            for script in sorted(PROFILES_DIR.glob("*.sh")):
                connection.put(io.BytesIO(script.read_bytes()), f"{scripts}/{script.name}")
            for name in profiles:
                marker = f"{_PROFILE_MARKERS}/{name}"
                command = (
                    f"test -e {marker} || (sh {scripts}/{name}.sh && "
                    f"mkdir -p {_PROFILE_MARKERS} && touch {marker})"
                )
                result = connection.sudo(f"sh -c '{command}'", hide=True, warn=True)
                if not result.ok:
                    tail = " / ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
                    return f"{vm.hostname}: profile {name} failed: {tail}"
        return None

    with ThreadPoolExecutor(max_workers=min(8, len(vms) or 1)) as pool:
        problems = [problem for problem in pool.map(apply, vms) if problem]
    if problems:
        raise WorkshopError("; ".join(problems))


def _registry_status(client: docker.DockerClient, cohort: str) -> RegistryStatus | None:
    found = client.containers.list(all=True, filters=_cohort_filter(cohort, "registry"))
    if not found:
        return None
    container = found[0]
    health = container.attrs["State"].get("Health", {}).get("Status", container.status)
    if container.status != "running":
        health = container.status
    return RegistryStatus(container.labels[LABEL_REGISTRY_ADDRESS], container.short_id, health)


def _wait_registry_healthy(
    client: docker.DockerClient, cohort: str, address: str, timeout: float = 60
) -> RegistryStatus | None:
    deadline = time.monotonic() + timeout
    while True:
        status = _registry_status(client, cohort)
        if status is None or status.health in ("healthy", "unhealthy", "exited"):
            return status
        if time.monotonic() >= deadline:
            return status
        time.sleep(1)


def _trust_on_host(address: str, ca_cert: bytes) -> None:
    """Let the host's Docker engine verify the registry: certs.d is read per connection."""
    try:
        state.write_file(_DOCKER_CERTS_DIR / address / "ca.crt", ca_cert)
    except PermissionError:
        raise WorkshopError(
            f"cannot write {_DOCKER_CERTS_DIR / address}: run as root, or set "
            "WORKSHOP_DOCKER_CERTS_DIR to the engine's certs.d directory"
        ) from None


def _seed_image(
    client: docker.DockerClient,
    files: CohortPaths,
    address: str,
    image: str,
    repository: str,
    tag: str,
) -> str:
    """Push a locally built image to the classroom registry; return its reference by digest.

    Pushing is idempotent (the registry already has every layer the second time), and
    the digest is what provisioning preloads, so VMs never pull a moving tag.
    """
    credentials = json.loads(files.registry_credentials.read_text())
    target = f"{address}/{repository}"
    client.images.get(image).tag(target, tag)
    digest = ""
    try:
        stream = client.api.push(target, tag=tag, stream=True, decode=True, auth_config=credentials)
        for event in stream:
            if "error" in event:
                raise WorkshopError(
                    f"pushing {target}:{tag} to the classroom registry failed: "
                    f"{event['error']}; check 'workshop cloud status --cohort {files.root.name}'"
                )
            digest = event.get("aux", {}).get("Digest", digest)
    finally:
        # The push tag only names the upload; leaving it would pile one up per cohort.
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(f"{target}:{tag}", noprune=True)
    return f"{target}:{tag}@{digest}"


def render_inventory(
    cohort: str,
    files: CohortPaths,
    vms: list[VmStatus],
    registry_address: str,
    students: list[Student] | None = None,
    lab_images: list[str] | None = None,
) -> str:
    """The lab cloud cohort's inventory, written by the one writer (``cohort.py``)."""
    bundle = trust.extra_ca_bundle()
    people = [
        cohorts.Student(
            student.login,
            student.name,
            student.host,
            (files.student_dir(student.login) / "id_ed25519.pub").read_text().strip(),
        )
        for student in students or []
    ]
    layout = cohorts.Layout(
        name=cohort,
        state_dir=files.root,
        admin_user=ADMIN_USER,
        key_file=files.ssh_key,
        # IdentitiesOnly: only the cohort's key is offered (an agent's other keys would use
        # up sshd's MaxAuthTries before it).
        ssh_args=(
            f"-o UserKnownHostsFile={files.known_hosts} -o StrictHostKeyChecking=yes "
            "-o IdentitiesOnly=yes"
        ),
        lab_cloud=True,
        registry=registry_address,
        registry_ca=files.ca_cert,
        # Docker's own apt repository is out of reach here: use Debian's packages.
        docker_install_source="distro",
        # A cloud VM reaches the internet with the public CAs; the lab cloud's VMs reach it
        # through this machine, so they trust what it trusts (a TLS-intercepting proxy's
        # CA): curl and pip in a venv work as on a VM.
        extra_ca_certificates=(str(bundle),) if bundle else (),
        lab_images=tuple(lab_images or ()),
        hosts=tuple(
            (vm.hostname, vm.ip, tuple(p for p in people if p.host == vm.hostname)) for vm in vms
        ),
        written_by=f"workshop cloud up --cohort {cohort}",
    )
    return cohorts.render_inventory(layout)


# --- status and down -------------------------------------------------------------------


def status(cohort: str) -> CloudReport:
    """Ask every VM of ``cohort`` over SSH how systemd is doing; check the registry."""
    validate_cohort_name(cohort)
    client = docker_client()
    files = paths(cohort)
    containers = _vm_containers(client, cohort)
    if not containers:
        raise WorkshopError(
            f"cohort {cohort!r} has no VMs on this engine: start it with "
            f"'workshop cloud up --cohort {cohort} --students N'"
        )
    vms = []
    for container in containers:
        networks = container.attrs["NetworkSettings"]["Networks"]
        ip = next(iter(networks.values()))["IPAddress"] if networks else ""
        vm = VmStatus(container.name, container.attrs["Config"]["Hostname"], ip, container.short_id)
        if container.status != "running":
            vm.systemd = f"container {container.status}"
        vms.append(vm)
    running = [vm for vm in vms if vm.systemd == "not checked"]
    probed = {vm.name: vm for vm in _probe_vms(files, running, wait_seconds=0)}
    return CloudReport(
        cohort=cohort,
        distro=containers[0].labels.get(LABEL_DISTRO, "?"),
        state_dir=str(files.root),
        vms=[probed.get(vm.name, vm) for vm in vms],
        registry=_registry_status(client, cohort),
    )


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


def _untag_registry(client: docker.DockerClient, address: str) -> list[str]:
    """Remove this engine's tags of images pushed to ``address`` (the images stay)."""
    removed = []
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{address}/"):
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_image(tag, noprune=True)
                    removed.append(tag)
    return removed


def down(cohort: str) -> DownReport:
    """Remove everything ``up`` created for ``cohort``; nothing else. Safe to repeat."""
    validate_cohort_name(cohort)
    client = docker_client()
    report = DownReport(cohort)
    selector = {"label": [f"{LABEL_COHORT}={cohort}"]}
    for container in client.containers.list(all=True, filters=selector):
        address = container.labels.get(LABEL_REGISTRY_ADDRESS)
        if address and (_DOCKER_CERTS_DIR / address).is_dir():
            shutil.rmtree(_DOCKER_CERTS_DIR / address)
            report.files.append(str(_DOCKER_CERTS_DIR / address))
        if address:
            report.tags += _untag_registry(client, address)
        container.remove(force=True, v=False)
        report.containers.append(container.name)
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)
        report.volumes.append(volume.name)
    for network in client.networks.list(filters=selector):
        network.remove()
        report.networks.append(network.name)
    if state.remove_cohort_dir(cohort):
        report.files.append(str(state.cohort_dir(cohort)))
    return report
