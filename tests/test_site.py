"""site.yml against a real 2-VM lab cloud over real SSH: ready, idempotent, and honest
about the hosts that are not."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import docker
import pytest
import yaml

from tests.conftest import REPO, run_workshop, unique_cohort
from workshop.labs import catalog
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
        labs = len(catalog.all_labs())  # every lab's archive, delivered to every student
        assert mine["labs"] == {"expected": labs, "present": labs, "missing": []}
        assert mine["tools_missing"] == []
        assert mine["ssh_login"] is True, "the password on the card does not log in"
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


def test_a_link_in_a_students_home_hands_root_nothing(provisioned, lab_cloud):
    """~/.docker made a link to a root-owned directory: the registry stage, which writes
    the student's login there, acts as the student, so the directory stays root's and
    nothing lands in it. (As root it followed the link: chown, chmod, and a file in it.)"""
    vm = lab_cloud["vms"][0]
    inventory = Path(lab_cloud["state_dir"]) / "inventory.yml"
    owned = "/srv/root-only"  # as /etc/cron.d or /etc/sudoers.d would be
    with connect(admin(lab_cloud, vm)) as conn:
        conn.sudo(f"install -d -m 0755 -o root -g root {owned}", hide=True)
        conn.sudo(f"sh -c 'rm -rf ~/.docker && ln -s {owned} ~/.docker'", user="student01")
    try:
        playbook(inventory, "--tags", "registry", "--limit", "student-01")
        with connect(admin(lab_cloud, vm)) as conn:
            assert conn.run(f"stat -c '%U %a' {owned}", hide=True).stdout.strip() == "root 755"
            assert conn.run(f"test -e {owned}/config.json", warn=True, hide=True).failed
    finally:
        with connect(admin(lab_cloud, vm)) as conn:
            conn.sudo(f"rm -rf /home/student01/.docker {owned}", hide=True)
        restored = playbook(inventory, "--tags", "registry", "--limit", "student-01")
        assert restored.returncode == 0, restored.stdout[-2000:]


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


def test_a_roster_whose_only_fault_is_a_duplicate_login_is_refused(provisioned):
    roster = [{"login": "twin", "name": "Listed on every host"}]
    result = playbook(
        provisioned["inventory"],
        "--tags",
        "preflight",
        "-e",
        json.dumps({"workshop_students": roster}),
    )
    assert result.returncode != 0
    assert "logins listed more than once in the cohort: twin" in result.stdout
    assert "invalid or reserved logins" not in result.stdout


def test_a_reachable_host_that_fails_verification_is_named_in_the_table(provisioned, lab_cloud):
    with connect(admin(lab_cloud, lab_cloud["vms"][1])) as conn:
        conn.sudo("apt-get remove -y -qq jq", hide=True)
    try:
        result = playbook(provisioned["inventory"], "--tags", "verify")
    finally:
        restored = playbook(provisioned["inventory"], "--tags", "materials")  # reinstalls jq
    assert restored.returncode == 0, restored.stdout[-2000:]
    assert result.returncode != 0
    assert re.search(r"student-01\s+student01\s+.*\sok\"", result.stdout), result.stdout[-2000:]
    assert re.search(r"student-02\s+student02\s+.*FAILED: student02 lacks jq", result.stdout)
    assert "Not ready: student-02 (student02 lacks jq)" in result.stdout


def test_under_limit_the_other_hosts_are_left_out_not_called_unreachable(provisioned):
    """`--limit student-01` alone (no localhost) still ends with the table."""
    result = playbook(provisioned["inventory"], "--tags", "verify", "--limit", "student-01")
    assert result.returncode == 0, result.stdout[-2000:]
    assert re.search(r"student-01\s+student01\s+.*\sok\"", result.stdout)
    assert "student-02  " not in result.stdout
    assert "(not in this run: student-02)" in result.stdout


def test_a_hand_written_inventory_like_the_example_provisions_the_same_vms(
    provisioned, lab_cloud, tmp_path
):
    """README's "Real VMs" path: an inventory written by hand in the example's shape (CA
    path relative to the checkout, the cohort's state elsewhere, students without keys),
    `workshop prepare --inventory`, then site.yml."""
    cloud_state = Path(lab_cloud["state_dir"])
    cohort = "hand-" + lab_cloud["cohort"]
    state = tmp_path / "state" / cohort
    for login in ("student01", "student02"):  # their registry logins (README: htpasswd)
        (state / "students" / login).mkdir(parents=True)
        shutil.copy(cloud_state / "students" / login / "password", state / "students" / login)
    (state / "registry").mkdir()
    inventory_files = REPO / "inventory" / "files"
    ca = inventory_files / f"{cohort}-ca.crt"
    inventory_files.mkdir(exist_ok=True)
    shutil.copy(cloud_state / "registry" / "ca.crt", ca)
    known_hosts = cloud_state / "ssh" / "known_hosts"
    hosts = {
        vm["hostname"]: {
            "ansible_host": vm["ip"],
            "workshop_students": [{"login": f"student{vm['hostname'][-2:]}", "name": "No key"}],
        }
        for vm in lab_cloud["vms"]
    }
    example = {
        "ansible_user": "admin",
        "ansible_ssh_private_key_file": str(cloud_state / "ssh" / "id_ed25519"),
        "ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts}",
        "workshop_cohort": cohort,
        "workshop_lab_cloud": False,
        "workshop_state_dir": str(state),
        "docker_install_source": "distro",
        "classroom_registry_address": lab_cloud["registry"]["address"],
        "classroom_registry_ca_file": f"inventory/files/{cohort}-ca.crt",
    }
    inventory = tmp_path / f"{cohort}.yml"

    def write(lab_images: list[str]) -> None:
        content = {
            "all": {
                "vars": {**example, "workshop_lab_images": lab_images},
                "children": {"student_vms": {"hosts": hosts}},
            }
        }
        inventory.write_text(yaml.safe_dump(content))

    try:
        write([])
        args = ("prepare", "--cohort", cohort, "--inventory", str(inventory))
        refused = run_workshop(*args)
        assert refused.returncode == 2
        assert f"no instructor login for {lab_cloud['registry']['address']}" in refused.stderr
        shutil.copy(cloud_state / "registry" / "credentials.json", state / "registry")
        prepared = run_workshop(*args)
        assert prepared.returncode == 0, prepared.stderr
        listed = (state / "lab-images.txt").read_text().splitlines()
        write([line.removeprefix("- ") for line in listed])  # as README says, by hand
        result = playbook(inventory)
        assert result.returncode == 0, result.stdout[-3000:]
        for vm in lab_cloud["vms"]:
            verified = json.loads((state / "verify" / f"{vm['hostname']}.json").read_text())
            login = f"student{vm['hostname'][-2:]}"
            assert verified["students"][login]["ssh_login"] is True
            assert verified["students"][login]["registry_login"] is True
    finally:
        ca.unlink()
        if not any(inventory_files.iterdir()):
            inventory_files.rmdir()


def test_a_vm_shared_by_two_students_gives_each_an_engine_of_their_own(
    provisioned, lab_cloud, tmp_path
):
    """Two students on one VM (a hand-edited inventory): each gets a rootless engine with
    the lab images, neither reaches the VM's engine or the other's files through a
    container, and the table says both are ready. Back to one student per VM afterwards:
    the VM's engine again."""
    inventory = yaml.safe_load(provisioned["inventory"].read_text())
    hosts = inventory["all"]["children"]["student_vms"]["hosts"]
    roster = [entry for host in hosts.values() for entry in host["workshop_students"]]
    hosts["student-01"]["workshop_students"] = roster
    shared = tmp_path / "shared.yml"
    shared.write_text(yaml.safe_dump(inventory))
    extra = ["-e", json.dumps({"classroom_registry_mirror": MIRROR}), "--limit", "student-01"]
    vm = lab_cloud["vms"][0]
    try:
        result = playbook(shared, *extra)
        assert result.returncode == 0, result.stdout[-3000:]
        for login in ("student01", "student02"):
            row = rf"student-01\s+{login}\s+.*\sok"
            assert re.search(row, result.stdout), result.stdout[-2000:]
        verified = json.loads(
            (Path(lab_cloud["state_dir"]) / "verify" / "student-01.json").read_text()
        )
        for login in ("student01", "student02"):
            assert verified["students"][login]["docker_without_sudo"] is True, verified
            assert verified["students"][login]["registry_login"] is True, verified
        with connect(student(lab_cloud, vm, "student01")) as conn:
            info = conn.run("docker info --format '{{.DockerRootDir}}'", hide=True)
            assert info.stdout.strip() == "/home/student01/.local/share/docker"
            image = provisioned_image(lab_cloud)
            # root in the container: the student's own uid on the VM, no more
            run = f"docker run --rm --pull never --user 0:0 -v /home:/h {image}"
            assert conn.run(f"{run} ls /h/student01/.docker", hide=True).ok
            peek = conn.run(f"{run} cat /h/student02/.docker/config.json", hide=True, warn=True)
            assert peek.failed, peek.stdout
            assert "Permission denied" in peek.stderr
            root = conn.run("docker --host unix:///var/run/docker.sock ps", hide=True, warn=True)
            assert root.failed
            assert "permission denied" in root.stderr
    finally:
        restored = playbook(provisioned["inventory"], *extra)
        with connect(admin(lab_cloud, vm)) as conn:  # student02's account lives on student-02
            conn.sudo("loginctl terminate-user student02; userdel -rf student02", warn=True)
    assert restored.returncode == 0, restored.stdout[-3000:]
    with connect(student(lab_cloud, vm, "student01")) as conn:
        info = conn.run("docker info --format '{{.DockerRootDir}}'", hide=True)
        assert info.stdout.strip() == "/var/lib/docker"


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
