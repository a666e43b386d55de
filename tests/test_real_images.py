"""site.yml on VMs that look like the ones clouds really give (lab-cloud VM profiles,
workshop/labcloud/profiles/): Ubuntu's always-running unattended-upgrades, Docker's and
NVIDIA's own apt sources, minimal images, an archive out of reach."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_workshop, unique_cohort
from workshop.ssh import SshTarget, connect

pytestmark = pytest.mark.labcloud


@pytest.fixture
def profiled(state_root, request):
    """A one-VM cohort with the profile the test is parametrized with; down afterwards."""
    cohort = unique_cohort("p")
    up = run_workshop(
        "cloud", "up", "--cohort", cohort, "--students", "1", "--profile", request.param, "--json"
    )
    assert up.returncode == 0, up.stderr
    report = json.loads(up.stdout)
    yield report
    assert run_workshop("cloud", "down", "--cohort", cohort).returncode == 0


def playbook(report: dict, *args: str, book: str = "site.yml") -> subprocess.CompletedProcess[str]:
    inventory = Path(report["state_dir"]) / "inventory.yml"
    return subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory), book, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def root(report: dict, command: str):
    ssh = Path(report["state_dir"]) / "ssh"
    target = SshTarget(report["vms"][0]["ip"], "admin", ssh / "id_ed25519", ssh / "known_hosts")
    with connect(target) as conn:
        return conn.sudo(command, hide=True, warn=True)


@pytest.mark.parametrize("profiled", ["unattended-upgrades"], indirect=True)
def test_unattended_upgrades_never_stall_preflight_and_a_held_lock_is_waited_for(profiled):
    assert root(profiled, "pgrep -x unattended-upgr").ok, "the profile's state is not there"
    # Ubuntu's shutdown helper runs all the time and holds no lock: no wait at all.
    first = playbook(profiled, "--tags", "preflight")
    assert first.returncode == 0, first.stdout[-2000:]
    assert "FAILED - RETRYING" not in first.stdout
    # A real apt run holding dpkg's frontend lock: named when it outlasts the timeout,
    # waited for when it does not. It holds until told to stop (a fixed 25 s was too short
    # for a loaded machine to reach the lock check in time).
    hold = (
        "import fcntl, os, time; fd = os.open('/var/lib/dpkg/lock-frontend', os.O_RDWR); "
        "fcntl.lockf(fd, fcntl.LOCK_EX); time.sleep(900)"
    )
    assert root(profiled, f'systemd-run --unit=hold-lock python3 -c "{hold}"').ok
    started = time.monotonic()
    short = playbook(profiled, "--tags", "preflight", "-e", "preflight_apt_lock_timeout=5")
    took = time.monotonic() - started
    assert short.returncode != 0
    assert (
        "another apt or dpkg run still holds /var/lib/dpkg/lock-frontend after 5s" in short.stdout
    )
    assert "time.sleep(900)" in short.stdout, "the process holding the lock is named"
    # The lock goes some seconds after the next run reaches its check (about when the
    # first run did): that run must wait for it, retrying, then pass.
    release = f"systemd-run --on-active={int(took) + 15} systemctl stop hold-lock"
    assert root(profiled, release).ok
    waited = playbook(profiled, "--tags", "preflight", "-e", "preflight_apt_lock_timeout=300")
    assert waited.returncode == 0, waited.stdout[-2000:]
    assert "FAILED - RETRYING" in waited.stdout


@pytest.mark.parametrize("profiled", ["vendor-sources"], indirect=True)
def test_docker_and_nvidia_sources_of_the_image_are_adopted_not_duplicated(profiled):
    # What an earlier run of the kit (or of an older kit) left: its own source for the same
    # URI with another Signed-By. apt refuses to work at all with both present.
    stale = (
        "Types: deb\\nURIs: https://download.docker.com/linux/debian\\nSuites: trixie\\n"
        "Components: stable\\nSigned-By: /usr/share/keyrings/workshop-docker.gpg\\n"
    )
    root(
        profiled,
        f'sh -c \'touch /usr/share/keyrings/workshop-docker.gpg; printf "{stale}" '
        "> /etc/apt/sources.list.d/docker.sources'",
    )
    broken = root(profiled, "apt-cache policy")
    assert broken.failed
    assert "Conflicting values set for option Signed-By" in broken.stderr
    result = playbook(
        profiled, "-e", "docker_install_source=official", book="tests/playbooks/repositories.yml"
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert root(profiled, "apt-cache policy").ok, "apt still refuses its sources"
    listed = root(profiled, "ls /etc/apt/sources.list.d").stdout.split()
    assert sorted(listed) == ["debian.sources", "docker.list", "nvidia-container-toolkit.list"]


@pytest.mark.parametrize("profiled", ["minimal"], indirect=True)
def test_a_minimal_image_without_lists_or_python3_apt_is_provisioned(profiled):
    assert root(profiled, "python3 -c 'import apt'").failed, "python3-apt is there"
    assert root(profiled, "ls /var/lib/apt/lists").stdout.split() in ([], ["partial"])
    result = playbook(profiled, "--tags", "preflight,docker")
    assert result.returncode == 0, result.stdout[-2000:]
    assert root(profiled, "docker version --format '{{.Server.Version}}'").ok


@pytest.mark.parametrize("profiled", ["offline-archive"], indirect=True)
def test_an_unreachable_archive_is_one_clear_line_and_a_red_row(profiled):
    result = playbook(profiled)
    assert result.returncode != 0
    assert re.search(
        r"student-01 cannot reach its package archive \(W: Failed to fetch "
        r"http://archive\.classroom\.invalid/\S+ +Could not resolve",
        result.stdout,
    ), result.stdout[-2000:]
    assert "no installation candidate" not in result.stdout
    assert re.search(r"student-01\s+-\s+.*failed in preflight", result.stdout)


@pytest.mark.parametrize("profiled", ["docker-preinstalled"], indirect=True)
def test_a_docker_the_image_ships_is_kept_and_its_containers_keep_running(profiled):
    before = root(profiled, "docker inspect -f '{{.State.StartedAt}}' preexisting").stdout
    # "official" would remove the distribution's Docker to install Docker's own: an image
    # whose Docker is new enough keeps it.
    result = playbook(
        profiled, "--tags", "preflight,docker", "-e", "docker_install_source=official"
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert "Keeping the Docker this image ships (Engine 26." in result.stdout
    assert "kept running (live-restore)" in result.stdout
    after = root(profiled, "docker inspect -f '{{.State.StartedAt}} {{.State.Status}}' preexisting")
    assert after.stdout.split() == [before.strip(), "running"], "the container was restarted"
    daemon = json.loads(root(profiled, "cat /etc/docker/daemon.json").stdout)
    assert daemon["live-restore"] is True


@pytest.mark.parametrize("profiled", ["cloud-init-running"], indirect=True)
def test_cloud_init_still_running_is_waited_for_or_named(profiled):
    """The real cloud-init, mid first boot: preflight waits for it (it holds apt while it
    installs the user data's packages), and says so in one line when it takes too long."""
    assert root(profiled, "cloud-init status").stdout.strip() == "status: running"
    short = playbook(profiled, "--tags", "preflight", "-e", "preflight_cloud_init_timeout=3")
    assert short.returncode != 0
    assert "cloud-init is still running its first boot on student-01 after 3 s" in short.stdout
    assert re.search(r"student-01\s+-\s+.*failed in preflight", short.stdout), short.stdout[-2000:]
    waited = playbook(profiled, "--tags", "preflight")
    assert waited.returncode == 0, waited.stdout[-2000:]
    assert root(profiled, "cloud-init status").stdout.strip() == "status: done"
    assert root(profiled, "test -x /usr/bin/jq").ok, "the user data's package was installed"
