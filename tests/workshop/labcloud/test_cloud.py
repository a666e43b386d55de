"""The lab cloud end to end: real systemd VMs, real SSH, a real TLS registry."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest
import requests

from tests.conftest import REPO, labelled, run_workshop, unique_cohort
from workshop.labcloud import network, spec
from workshop.ssh import SshTarget, connect

pytestmark = pytest.mark.labcloud


def ssh_target(report: dict, vm: dict) -> SshTarget:
    ssh = Path(report["state_dir"]) / "ssh"
    return SshTarget(vm["ip"], "admin", ssh / "id_ed25519", ssh / "known_hosts")


def test_ansible_ping_reaches_every_vm_through_the_generated_inventory(lab_cloud, state_root):
    # `up` points state/current at its cohort (other tests may have moved it since).
    again = run_workshop("cloud", "up", "--cohort", lab_cloud["cohort"], "--students", "2")
    assert again.returncode == 0, again.stderr
    inventory = state_root / "current" / "inventory.yml"
    assert inventory.resolve().parent.name == lab_cloud["cohort"]
    result = subprocess.run(
        [str(Path(REPO / ".venv/bin/ansible")), "all", "-i", str(inventory), "-m", "ping"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for vm in lab_cloud["vms"]:
        assert f"{vm['hostname']} | SUCCESS" in result.stdout


def test_each_vm_boots_systemd_and_answers_ssh_with_its_own_host_key(lab_cloud):
    host_keys = set()
    for vm in lab_cloud["vms"]:
        with connect(ssh_target(lab_cloud, vm)) as conn:
            assert conn.run("ps -o comm= -p 1", hide=True).stdout.strip() == "systemd"
            assert conn.run("systemctl is-system-running", hide=True, warn=True).stdout.strip() in (
                "running",
                "degraded",
            )
            assert conn.run("hostname", hide=True).stdout.strip() == vm["hostname"]
            assert conn.run("sudo -n id -u", hide=True).stdout.strip() == "0"
            # Docker inside the VM gets its own volume, so overlay2 can work there.
            mounts = conn.run("findmnt -n -o TARGET /var/lib/docker", hide=True, warn=True)
            assert mounts.stdout.strip() == "/var/lib/docker"
            host_keys.add(conn.client.get_transport().get_remote_server_key().get_base64())
    assert len(host_keys) == len(lab_cloud["vms"]), "VMs must not share SSH host keys"


def test_ssh_refuses_a_vm_whose_host_key_is_not_known(lab_cloud, tmp_path):
    vm = lab_cloud["vms"][0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    target = ssh_target(lab_cloud, vm)
    with pytest.raises(Exception, match="not found in known_hosts"):
        connect(SshTarget(target.host, target.user, target.key_file, empty)).run("true")


def tiny_image(engine: docker.DockerClient, repository: str) -> None:
    """A one-file image made from a tar stream (nothing to pull)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b"hello from the classroom registry test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    engine.api.import_image_from_data(buffer.getvalue(), repository=repository, tag="1")


def push_errors(engine: docker.DockerClient, repository: str, auth: dict | None) -> list[str]:
    stream = engine.api.push(repository, tag="1", stream=True, decode=True, auth_config=auth)
    return [item["error"] for item in stream if "error" in item]


def push_as(engine: docker.DockerClient, uri: str, username: str, password: str) -> list[str]:
    """A tiny image pushed to ``uri`` with that login, then removed here: the errors."""
    tiny_image(engine, uri)
    try:
        return push_errors(engine, uri, {"username": username, "password": password})
    finally:
        engine.images.remove(f"{uri}:1", force=True)


def test_registry_takes_an_authenticated_push_over_tls_and_refuses_anonymous(lab_cloud, engine):
    state = Path(lab_cloud["state_dir"])
    address = lab_cloud["registry"]["address"]
    credentials = json.loads((state / "registry/credentials.json").read_text())
    ca = str(state / "registry/ca.crt")
    repository = f"{address}/tests/tiny"
    tiny_image(engine, repository)
    try:
        anonymous = push_errors(engine, repository, None)
        assert anonymous, "an anonymous push must be refused"
        assert "auth" in anonymous[0].lower()

        auth = {"username": credentials["username"], "password": credentials["password"]}
        assert push_errors(engine, repository, auth) == []
    finally:
        engine.images.remove(f"{repository}:1", force=True)

    # The registry's certificate verifies against the cohort CA, and the API wants a login.
    assert requests.get(f"https://{address}/v2/", verify=ca, timeout=10).status_code == 401
    basic = (credentials["username"], credentials["password"])
    tags = requests.get(
        f"https://{address}/v2/tests/tiny/tags/list", auth=basic, verify=ca, timeout=10
    )
    assert tags.json() == {"name": "tests/tiny", "tags": ["1"]}
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://{address}/v2/", timeout=10)  # not trusted without the CA


def test_state_secrets_are_private(lab_cloud):
    state = Path(lab_cloud["state_dir"])
    for secret in (
        "ssh/id_ed25519",
        "registry/ca.key",
        "registry/ca.crt",
        "registry/registry.key",
        "registry/credentials.json",
        "registry/htpasswd",
    ):
        assert stat.S_IMODE((state / secret).stat().st_mode) == 0o600, secret
    password = json.loads((state / "registry/credentials.json").read_text())["password"]
    assert password not in (state / "inventory.yml").read_text()
    assert password not in (state / "cohort.json").read_text()


def test_second_up_changes_nothing(lab_cloud, engine):
    cohort = lab_cloud["cohort"]
    before = {
        c.name: c.id
        for c in engine.containers.list(filters={"label": f"{spec.LABEL_COHORT}={cohort}"})
    }
    # A push keeps its target tag on the image (push_all, the bench): a registry image
    # with another tag besides its own is still the same image.
    registry = engine.containers.get(f"ws-{cohort}-registry")
    registry.image.tag("0kit-test/registry-extra-tag", "1")
    try:
        result = run_workshop("cloud", "up", "--cohort", cohort, "--students", "2", "--json")
    finally:
        engine.images.remove("0kit-test/registry-extra-tag:1", noprune=True)
    assert result.returncode == 0, result.stderr
    again = json.loads(result.stdout)
    after = {
        c.name: c.id
        for c in engine.containers.list(filters={"label": f"{spec.LABEL_COHORT}={cohort}"})
    }
    assert after == before
    assert [(vm["hostname"], vm["ip"]) for vm in again["vms"]] == [
        (vm["hostname"], vm["ip"]) for vm in lab_cloud["vms"]
    ]
    assert [image["built"] for image in again["images"]] == [False] * len(again["images"])
    assert again["ready"] is True


def test_status_reports_every_vm(lab_cloud):
    result = run_workshop("cloud", "status", "--cohort", lab_cloud["cohort"], "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(vm["hostname"], vm["ssh_ok"]) for vm in report["vms"]] == [
        ("student-01", True),
        ("student-02", True),
    ]
    assert report["registry"]["health"] == "healthy"


def test_down_removes_exactly_the_cohort_and_is_idempotent(state_root, engine, lab_cloud):
    cohort = unique_cohort("d")
    volumes_before = {v.name for v in engine.volumes.list()}
    up = run_workshop("cloud", "up", "--cohort", cohort, "--students", "1", "--json")
    assert up.returncode == 0, up.stderr
    address = json.loads(up.stdout)["registry"]["address"]
    assert all(labelled(engine, cohort).values())
    # A push keeps its tag (as `docker push` does); down removes the cohort's, not the image.
    hello = next(i for i in engine.images.list() if any("/hello" in t for t in i.tags))
    engine.api.tag(hello.id, f"{address}/classroom/hello", "1")

    # A stopped VM shows up in status, and status says the cohort is not ready.
    engine.containers.get(f"ws-{cohort}-student-01").stop(timeout=10)
    status = run_workshop("cloud", "status", "--cohort", cohort, "--json")
    assert status.returncode == 1
    assert json.loads(status.stdout)["vms"][0]["systemd"] == "container exited"

    other = labelled(engine, lab_cloud["cohort"])
    first = run_workshop("cloud", "down", "--cohort", cohort)
    assert first.returncode == 0, first.stderr
    assert labelled(engine, cohort) == {"containers": [], "volumes": [], "networks": []}
    assert not (state_root / cohort).exists()
    assert not Path(f"/etc/docker/certs.d/{address}").exists()
    assert not [t for i in engine.images.list() for t in i.tags if t.startswith(f"{address}/")]
    assert engine.images.get(hello.id), "the image itself stays"
    assert labelled(engine, lab_cloud["cohort"]) == other, "down touched another cohort"
    assert {v.name for v in engine.volumes.list()} == volumes_before, "up or down leaked a volume"

    second = run_workshop("cloud", "down", "--cohort", cohort)
    assert second.returncode == 0, second.stderr
    assert "nothing to remove" in second.stdout


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (["--students", "0"], "at least 1"),
        (["--students", str(spec.MAX_STUDENTS + 1)], f"at most {spec.MAX_STUDENTS}"),
        (["--distro", "centos7"], "use one of debian13, debian12"),
        (["--cohort", "Bad_Name"], "lower-case letters"),
        (["--cohort", "-lead"], "lower-case letters"),
        (["--cohort", "x" * 25], "1-24"),
        (["--cohort", "café"], "lower-case letters"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix_and_creates_nothing(args, fix, state_root, engine):
    cohort = args[1] if args[0] == "--cohort" else unique_cohort("bad")
    cohort_args = [] if args[0] == "--cohort" else ["--cohort", cohort]
    before = {c.id for c in engine.containers.list(all=True)}
    result = run_workshop("cloud", "up", *cohort_args, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fix in lines[0]
    assert {c.id for c in engine.containers.list(all=True)} == before
    assert not (state_root / cohort).exists()


def test_a_subnet_taken_by_another_cohorts_up_meanwhile_is_not_reused(engine, monkeypatch):
    """Two `up`s at once (Molecule runs three): both see the same /24 free, the second
    create is refused by Docker ("Pool overlaps"), and that cohort takes the next one."""
    taken = network._free_subnet(engine)
    racer = engine.networks.create(
        unique_cohort("racer"),
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(taken))]),
    )
    cohort = unique_cohort("race")
    seen = iter([taken])  # what this `up` saw before the racer created its network
    real = network._free_subnet
    monkeypatch.setattr(network, "_free_subnet", lambda client: next(seen, None) or real(client))
    try:
        made, subnet = network.ensure_network(engine, cohort)
        try:
            assert subnet != taken
            assert made.attrs["IPAM"]["Config"][0]["Subnet"] == str(subnet)
        finally:
            made.remove()
    finally:
        racer.remove()
