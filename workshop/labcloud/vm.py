"""The student VMs: systemd containers that boot like cloud VMs (SSH, a Docker volume,
the devices rootless Docker needs), their host keys, SSH probes and VM profiles."""

from __future__ import annotations

import io
import ipaddress
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from workshop import state
from workshop.errors import WorkshopError
from workshop.labcloud import pki
from workshop.labcloud.spec import (
    ADMIN_USER,
    LABEL_DISTRO,
    PROFILES_DIR,
    CloudSpec,
    CohortPaths,
    VmStatus,
    cohort_filter,
    cohort_labels,
    resource_name,
    vm_hostname,
)
from workshop.ssh import SshTarget, connect, probe_systemd

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


def _vm_devices() -> list[str]:
    """The VM devices this machine has, passed through as they are on a cloud VM."""
    return [f"{path}:{path}:rwm" for path in _VM_DEVICES if Path(path).exists()]


_PROFILE_MARKERS = "/var/lib/workshop-profiles"


def _vm_ip(subnet: ipaddress.IPv4Network, index: int) -> str:
    return str(subnet.network_address + 10 + index)


def vm_containers(client: docker.DockerClient, cohort: str) -> list[Container]:
    found = client.containers.list(all=True, filters=cohort_filter(cohort, "vm"))
    return sorted(found, key=lambda c: c.name)


def check_compatible(spec: CloudSpec, existing: list[Container]) -> None:
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


def tar_of(entries: dict[str, tuple[bytes, int, int]]) -> bytes:
    """A tar archive of ``path -> (content, mode, uid)`` for ``put_archive``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, (content, mode, uid) in entries.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid = len(content), mode, uid, uid
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def image_user_uid(client: docker.DockerClient, image: str) -> int:
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


def ensure_vm(
    client: docker.DockerClient,
    cohort: str,
    index: int,
    network: str,
    subnet: ipaddress.IPv4Network,
    image: str,
    distro: str,
    public_key: bytes,
) -> VmStatus:
    hostname = vm_hostname(index)
    name = resource_name(cohort, hostname)
    ip = _vm_ip(subnet, index)
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        volume = f"{name}-docker"
        if not client.volumes.list(filters={"name": volume}):
            client.volumes.create(volume, labels=cohort_labels(cohort, "vm-docker"))
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
            labels={**cohort_labels(cohort, "vm"), LABEL_DISTRO: distro},
            host_config=host_config,
            networking_config=client.api.create_networking_config({network: endpoint}),
            detach=True,
        )
        container = client.containers.get(created["Id"])
        host_key = pki.ssh_keypair(f"root@{hostname}")
        container.put_archive(
            "/",
            tar_of(
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


def write_known_hosts(client: docker.DockerClient, files: CohortPaths, vms: list[VmStatus]) -> None:
    lines = [f"{vm.ip},{vm.hostname} {_read_host_key(client, vm.container)}\n" for vm in vms]
    state.write_file(files.known_hosts, "".join(lines))


def _ssh_target(files: CohortPaths, vm: VmStatus) -> SshTarget:
    return SshTarget(vm.ip, ADMIN_USER, files.ssh_key, files.known_hosts)


def probe_vms(files: CohortPaths, vms: list[VmStatus], *, wait_seconds: float) -> list[VmStatus]:
    def probe(vm: VmStatus) -> VmStatus:
        result = probe_systemd(_ssh_target(files, vm), wait_seconds=wait_seconds)
        return VmStatus(vm.name, vm.hostname, vm.ip, vm.container, result.ssh_ok, result.systemd)

    if not vms:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(vms))) as pool:
        return list(pool.map(probe, vms))


def apply_profiles(files: CohortPaths, vms: list[VmStatus], profiles: tuple[str, ...]) -> None:
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
