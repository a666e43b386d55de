"""apt's ``cache_valid_time`` trusts the mtime of /var/lib/apt/lists; a freshly built image
ships that directory empty and new. The roles refresh whenever there are no lists, so a
new VM's first install finds its packages (and a second run refreshes nothing)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from workshop.ssh import SshTarget, connect

PACKAGE = "busybox-static"  # in Debian's archive, in no role's list: only this test installs it


def playbook(cloud: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(REPO / ".venv/bin/ansible-playbook"),
            "-i",
            str(Path(cloud["state_dir"]) / "inventory.yml"),
            "--limit",
            "student-02",
            "tests/playbooks/lab-tools.yml",
            "-e",
            json.dumps({"lab_materials_packages": [PACKAGE]}),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


@pytest.mark.labcloud
def test_a_new_image_without_package_lists_installs_on_the_first_run(lab_cloud):
    vm = lab_cloud["vms"][1]
    ssh = Path(lab_cloud["state_dir"]) / "ssh"
    target = SshTarget(vm["ip"], "admin", ssh / "id_ed25519", ssh / "known_hosts")
    # The state a new image arrives in, whatever ran on this VM before: no lists, a
    # lists directory as new as the image, and the package absent.
    fresh = (
        f"dpkg -r {PACKAGE} >/dev/null 2>&1; "
        "find /var/lib/apt/lists -maxdepth 1 -type f -delete && touch /var/lib/apt/lists"
    )
    with connect(target) as conn:
        conn.sudo(f"sh -c '{fresh}'", hide=True)
    try:
        first = playbook(lab_cloud)
        assert first.returncode == 0, first.stdout[-3000:]
        with connect(target) as conn:
            assert conn.run(f"dpkg -s {PACKAGE}", warn=True, hide=True).ok
        again = playbook(lab_cloud)
        assert again.returncode == 0, again.stdout[-3000:]
        assert re.search(r"student-02\s+:\s+ok=\d+\s+changed=0\s", again.stdout), again.stdout
    finally:
        with connect(target) as conn:
            conn.sudo(f"dpkg -r {PACKAGE}", hide=True, warn=True)


def apt_tasks(node: object) -> list[dict]:
    """Every ansible.builtin.apt task in a parsed task file, blocks included."""
    found: list[dict] = []
    if isinstance(node, list):
        for item in node:
            found += apt_tasks(item)
    elif isinstance(node, dict):
        if "ansible.builtin.apt" in node:
            found.append(node)
        for key in ("block", "rescue", "always"):
            found += apt_tasks(node.get(key))
    return found


def test_no_role_trusts_the_lists_mtime_alone():
    """Every role task that skips the refresh by age uses its role's lists-aware value."""
    for tasks in sorted(REPO.glob("roles/*/tasks/*.yml")):
        role = tasks.parts[-3]
        for task in apt_tasks(yaml.safe_load(tasks.read_text())):
            valid = task["ansible.builtin.apt"].get("cache_valid_time")
            if valid is not None:
                assert valid == f"{{{{ _{role}_apt_cache_valid_time }}}}", (tasks, task["name"])
    for variables in sorted(REPO.glob("roles/*/vars/main.yml")):
        role = variables.parts[-3]
        defined = yaml.safe_load(variables.read_text()).get(f"_{role}_apt_cache_valid_time")
        if defined is not None:
            assert f"_{role}_apt_lists.matched" in defined, variables
