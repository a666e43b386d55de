"""site.yml against a real 2-VM lab cloud over real SSH: ready, idempotent, and honest
about the hosts that are not."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import docker
import pytest

from tests.conftest import REPO, run_workshop, unique_cohort
from workshop.ssh import SshTarget, connect, probe_systemd

pytestmark = pytest.mark.labcloud

ANSIBLE_PLAYBOOK = REPO / ".venv/bin/ansible-playbook"
# A Docker Hub mirror the classroom_registry role contributes to daemon.json. The .invalid
# name never resolves, so nothing is ever sent to it.
MIRROR = "https://mirror.classroom.invalid"
# A key no role of the kit owns, as a cloud image might ship it; it must survive.
FOREIGN_DAEMON_JSON = '{"features": {"buildkit": true}}'


def playbook(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "site.yml", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {ok: n, changed: n, ...}}."""
    rows = {}
    for host, counters in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        rows[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counters)}
    return rows


def admin(report: dict, vm: dict) -> SshTarget:
    ssh = Path(report["state_dir"]) / "ssh"
    return SshTarget(vm["ip"], "admin", ssh / "id_ed25519", ssh / "known_hosts")


def student(report: dict, vm: dict, login: str) -> SshTarget:
    state = Path(report["state_dir"])
    return SshTarget(
        vm["ip"], login, state / "students" / login / "id_ed25519", state / "ssh" / "known_hosts"
    )


@pytest.fixture(scope="module")
def provisioned(lab_cloud):
    """site.yml run twice on the session's lab cloud; both outputs kept for the tests."""
    inventory = Path(lab_cloud["state_dir"]) / "inventory.yml"
    with connect(admin(lab_cloud, lab_cloud["vms"][0])) as conn:
        conn.sudo("mkdir -p /etc/docker", hide=True)
        conn.put(io.StringIO(FOREIGN_DAEMON_JSON), "/tmp/daemon.json")
        conn.sudo("mv /tmp/daemon.json /etc/docker/daemon.json", hide=True)
    # Before class: images by digest and the labs' archives (what site.yml preloads and delivers).
    prepared = run_workshop("prepare", "--cohort", lab_cloud["cohort"])
    assert prepared.returncode == 0, prepared.stderr + prepared.stdout
    extra = ["-e", json.dumps({"classroom_registry_mirror": MIRROR})]
    first = playbook(inventory, *extra)
    second = playbook(inventory, *extra)
    return {"inventory": inventory, "first": first, "second": second}


def test_site_makes_every_vm_ready_and_prints_the_table(provisioned, lab_cloud):
    first = provisioned["first"]
    assert first.returncode == 0, first.stdout[-3000:]
    results = Path(lab_cloud["state_dir"]) / "verify"
    for vm in lab_cloud["vms"]:
        result = json.loads((results / f"{vm['hostname']}.json").read_text())
        assert result["result"] == "ok", result["problems"]
        assert result["container_runs"] is True
        # classroom/hello, the classifier, and the four base stand-ins
        assert result["images"] == {"expected": 6, "present": 6, "missing": []}
        assert result["compose"].startswith("2.")
        assert result["gpu"] == "skipped: no GPU"
        login = f"student{vm['hostname'][-2:]}"
        mine = result["students"][login]
        assert mine["docker_without_sudo"] is True
        assert mine["registry_login"] is True
        assert mine["labs"] == {"expected": 7, "present": 7, "missing": []}
        assert mine["tools_missing"] == []
        row = re.search(rf"^.*{vm['hostname']}\s+{login}\s+(\S+).*\s(ok)\",?$", first.stdout, re.M)
        assert row, f"no table row for {vm['hostname']}"


def test_second_run_changes_nothing(provisioned):
    second = provisioned["second"]
    assert second.returncode == 0, second.stdout[-3000:]
    rows = recap(second.stdout)
    assert {host: row["changed"] for host, row in rows.items() if host != "localhost"} == {
        "student-01": 0,
        "student-02": 0,
    }


def test_daemon_json_holds_every_contribution(provisioned, lab_cloud):
    with connect(admin(lab_cloud, lab_cloud["vms"][0])) as conn:
        daemon = json.loads(conn.run("cat /etc/docker/daemon.json", hide=True).stdout)
        restarted = conn.sudo("docker info --format '{{json .RegistryConfig.Mirrors}}'", hide=True)
    assert daemon["features"] == {"buildkit": True}, "a key no role owns was clobbered"
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert daemon["registry-mirrors"] == [MIRROR + "/"] or daemon["registry-mirrors"] == [MIRROR]
    assert MIRROR in restarted.stdout, "the engine did not pick up the merged file"


def test_student_logs_in_with_their_key_and_runs_a_preloaded_image(provisioned, lab_cloud):
    vm = lab_cloud["vms"][0]
    with connect(student(lab_cloud, vm, "student01")) as conn:
        assert "docker" in conn.run("id -nG", hide=True).stdout.split()
        image = provisioned_image(lab_cloud)
        run = conn.run(f"docker run --rm --pull never {image}", hide=True)
        assert run.stdout.strip() == "hello from the classroom registry"
        assert conn.run("sudo -n true", hide=True, warn=True).failed, "students have no sudo"
        config = conn.run("stat -c %a ~/.docker/config.json", hide=True).stdout.strip()
        assert config == "600"


def provisioned_image(lab_cloud) -> str:
    inventory = (Path(lab_cloud["state_dir"]) / "inventory.yml").read_text()
    return re.search(r"- (\S+/classroom/hello:1)@sha256:", inventory).group(1)


def test_students_homes_are_closed_to_other_users(provisioned, lab_cloud):
    vm = lab_cloud["vms"][0]
    with connect(admin(lab_cloud, vm)) as conn:
        assert conn.run("stat -c %a /home/student01", hide=True).stdout.strip() == "700"
        peek = conn.sudo("ls /home/student01", user="nobody", hide=True, warn=True)
        assert peek.failed
        assert "Permission denied" in peek.stderr


def test_bad_roster_fails_in_preflight_naming_the_entries(provisioned):
    roster = [
        {"login": "Bad Name", "name": "Upper case and a space"},
        {"login": "root", "name": "Reserved"},
        {"login": "dupe", "name": "Listed on every host"},
        {"login": "noname"},
    ]
    result = playbook(
        provisioned["inventory"],
        "--tags",
        "preflight",
        "-e",
        json.dumps({"workshop_students": roster}),
    )
    assert result.returncode != 0
    assert "invalid or reserved logins Bad Name, root" in result.stdout
    assert "entries without a name: noname" in result.stdout
    assert "logins listed more than once in the cohort" in result.stdout
    assert "dupe" in result.stdout


def test_a_stopped_vm_is_reported_unreachable_while_the_others_finish(provisioned, lab_cloud):
    engine = docker.from_env()
    stopped = engine.containers.get(lab_cloud["vms"][1]["name"])
    stopped.stop(timeout=10)
    try:
        result = playbook(
            provisioned["inventory"],
            "-e",
            json.dumps({"classroom_registry_mirror": MIRROR, "preflight_connection_timeout": 10}),
        )
    finally:
        stopped.start()
    assert result.returncode != 0
    assert re.search(r"student-01\s+student01\s+.*\sok\"", result.stdout), result.stdout[-2000:]
    assert re.search(r"student-02\s+-\s+.*unreachable", result.stdout)
    assert "Not ready: student-02 (unreachable)" in result.stdout
    assert recap(result.stdout)["student-01"]["failed"] == 0
    # Back up for the rest of the session (the fixture's `down`, later tests).
    assert probe_systemd(admin(lab_cloud, lab_cloud["vms"][1]), wait_seconds=90).ssh_ok


def test_teardown_returns_the_vms_to_a_reusable_state(provisioned, lab_cloud):
    result = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(provisioned["inventory"]), "playbooks/teardown.yml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    image = provisioned_image(lab_cloud)
    for vm in lab_cloud["vms"]:
        with connect(admin(lab_cloud, vm)) as conn:
            login = f"student{vm['hostname'][-2:]}"
            assert conn.run(f"getent passwd {login}", hide=True, warn=True).failed
            assert conn.run(f"test -e /home/{login}", hide=True, warn=True).failed
            assert conn.run("test -e /var/lib/workshop", hide=True, warn=True).failed
            assert conn.sudo(f"docker image inspect {image}", hide=True, warn=True).failed
            assert conn.sudo("docker info --format '{{.ServerVersion}}'", hide=True).ok


def test_a_debian12_cohort_is_refused_distro_docker_with_the_fix(provisioned, state_root):
    """Same hostname as the cohort above on another image: no stale cached facts, and
    Debian 12's missing Compose v2/buildx packages named with the fix."""
    cohort = unique_cohort("b12")
    up = run_workshop("cloud", "up", "--cohort", cohort, "--students", "1", "--distro", "debian12")
    try:
        assert up.returncode == 0, up.stderr
        inventory = state_root / cohort / "inventory.yml"
        result = playbook(inventory, "--tags", "preflight,docker")
        assert result.returncode != 0
        assert (
            "Debian 12 has no Compose v2 or buildx package of its own: "
            "set docker_install_source: official." in result.stdout
        ), result.stdout[-2000:]
        assert "TASK [preflight : Assert that the operating system is supported.]" in result.stdout
    finally:
        assert run_workshop("cloud", "down", "--cohort", cohort).returncode == 0
