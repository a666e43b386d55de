"""Bring a simulated cohort up, report on it, and take it down again.

``up`` is idempotent: it builds only missing images, creates only missing containers,
volumes and keys, and starts what is stopped. Everything it creates carries the label
``org.workshop.cohort=<cohort>``, and ``down`` removes exactly what carries that label
(plus the cohort's state directory and the host's trust in its registry CA).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict

from workshop import cohort as cohorts
from workshop import state, trust
from workshop.engine import docker_client
from workshop.errors import WorkshopError
from workshop.labcloud import images, pki
from workshop.labcloud.classroom_registry import (
    DOCKER_CERTS_DIR,
    HELLO_REPOSITORY,
    HELLO_TAG,
    REGISTRY_PORT,
    REGISTRY_USER,
    ensure_registry,
    registry_ip,
    registry_status,
    seed_image,
    trust_on_host,
    untag_registry,
    wait_registry_healthy,
)
from workshop.labcloud.network import ensure_network
from workshop.labcloud.spec import (
    ADMIN_USER,
    BOOT_TIMEOUT,
    LABEL_COHORT,
    LABEL_DISTRO,
    LABEL_REGISTRY_ADDRESS,
    CloudReport,
    CloudSpec,
    CohortPaths,
    DownReport,
    Progress,
    Student,
    VmStatus,
    paths,
    read_record,
    roster,
    validate_cohort_name,
)
from workshop.labcloud.vm import (
    apply_profiles,
    check_compatible,
    ensure_vm,
    probe_vms,
    vm_containers,
    write_known_hosts,
)

# --- up -------------------------------------------------------------------------------


def up(spec: CloudSpec, progress: Progress = lambda _msg: None) -> CloudReport:
    """Create or complete the lab cloud for ``spec`` and wait until it is ready."""
    started = time.monotonic()
    client = docker_client()
    cohort = spec.cohort
    files = paths(cohort)
    existing = vm_containers(client, cohort)
    check_compatible(spec, existing)

    progress(f"images: student VM ({spec.distro.key}), classroom registry, classroom/hello")
    vm_image = images.build_image(client, "student-vm", spec.distro)
    registry_image = images.build_image(client, "classroom-registry", spec.distro)
    hello_image = images.build_image(client, "hello", spec.distro)

    progress(f"state: {files.root}")
    _ensure_secrets(cohort, files)
    students = roster(spec.students)
    logins_changed = _ensure_students(files, students)
    network, subnet = ensure_network(client, cohort)

    registry_address = f"{registry_ip(subnet)}:{REGISTRY_PORT}"
    progress(f"classroom registry: https://{registry_address}")
    ensure_registry(client, cohort, files, network.name, subnet, registry_image.tag, logins_changed)
    trust_on_host(registry_address, files.ca_cert.read_bytes())

    progress(f"student VMs: {spec.students}")
    public_key = files.ssh_key.with_suffix(".pub").read_bytes()
    vms = [
        ensure_vm(
            client, cohort, index, network.name, subnet, vm_image.tag, spec.distro.key, public_key
        )
        for index in range(1, spec.students + 1)
    ]
    write_known_hosts(client, files, vms)

    progress(f"waiting for SSH and systemd on {len(vms)} VMs (up to {BOOT_TIMEOUT}s)")
    statuses = probe_vms(files, vms, wait_seconds=BOOT_TIMEOUT)
    registry = wait_registry_healthy(client, cohort, registry_address)
    hello = seed_image(
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
        apply_profiles(files, [vm for vm in statuses if vm.ssh_ok], spec.profiles)
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
    containers = vm_containers(client, cohort)
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
    probed = {vm.name: vm for vm in probe_vms(files, running, wait_seconds=0)}
    return CloudReport(
        cohort=cohort,
        distro=containers[0].labels.get(LABEL_DISTRO, "?"),
        state_dir=str(files.root),
        vms=[probed.get(vm.name, vm) for vm in vms],
        registry=registry_status(client, cohort),
    )


def down(cohort: str) -> DownReport:
    """Remove everything ``up`` created for ``cohort``; nothing else. Safe to repeat."""
    validate_cohort_name(cohort)
    client = docker_client()
    report = DownReport(cohort)
    selector = {"label": [f"{LABEL_COHORT}={cohort}"]}
    for container in client.containers.list(all=True, filters=selector):
        address = container.labels.get(LABEL_REGISTRY_ADDRESS)
        if address and (DOCKER_CERTS_DIR / address).is_dir():
            shutil.rmtree(DOCKER_CERTS_DIR / address)
            report.files.append(str(DOCKER_CERTS_DIR / address))
        if address:
            report.tags += untag_registry(client, address)
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
