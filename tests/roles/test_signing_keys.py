"""Apt signing keys are checked against the vendors' fingerprints before a VM trusts them:
the filter against gpg's own answer on keys made here and on Debian's archive keys, and
the nvidia_toolkit role refusing a key whose fingerprint is not the pinned one."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from tests.conftest import REPO
from workshop.ssh import SshTarget, connect

spec = importlib.util.spec_from_file_location("openpgp", REPO / "filter_plugins" / "openpgp.py")
assert spec
assert spec.loader
openpgp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(openpgp)

SOURCE = "/etc/apt/sources.list.d/nvidia-container-toolkit.sources"
BEGIN, END = "-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----END PGP PUBLIC KEY BLOCK-----"


def gpg(home: Path, *args: str, text: str | None = None) -> str:
    return subprocess.run(
        ["gpg", "--batch", "--homedir", str(home), *args],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def fingerprints_by_gpg(home: Path, armored: str) -> list[str]:
    listed = gpg(home, "--with-colons", "--show-keys", text=armored)
    return [line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:")]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, str]:
    """An RSA key (v4, one packet per key) and an ed25519 key with an encryption subkey."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    made = {}
    for name, algorithm in (("rsa", "rsa2048"), ("ed25519", "default")):
        uid = f"Kit test {name} <{name}@example.invalid>"
        gpg(home, "--passphrase", "", "--quick-gen-key", uid, algorithm, "default", "never")
        made[name] = gpg(home, "--armor", "--export", uid)
    made["home"] = str(home)
    return made


@pytest.mark.parametrize("name", ["rsa", "ed25519"])
def test_fingerprints_are_gpgs(keys, name):
    armored = keys[name]
    assert openpgp.openpgp_fingerprints(armored) == fingerprints_by_gpg(Path(keys["home"]), armored)


def test_debian_archive_keys(tmp_path):
    """Real keys with many signatures and subkeys, as vendors publish them."""
    exported = subprocess.run(
        [
            "gpg",
            "--no-default-keyring",
            "--keyring",
            "/usr/share/keyrings/debian-archive-keyring.gpg",
            "--export",
            "--armor",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GNUPGHOME": str(tmp_path)},
    ).stdout
    tmp_path.chmod(0o700)
    found = openpgp.openpgp_fingerprints(exported)
    assert found == fingerprints_by_gpg(tmp_path, exported)
    assert len(found) >= 4


def test_published_spacing_is_accepted():
    published = "9DC8 5822 9FC7 DD38 854A  E2D8 8D81 803C 0EBF CD88"
    assert openpgp.normal_fingerprint(published) == "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"


@pytest.mark.parametrize(
    "text",
    [
        "<html>Not Found</html>",
        f"{BEGIN}\n\n!!!not base64!!!\n{END}\n",
        f"{BEGIN}\n\nAAAA\n{END}\n",
    ],
)
def test_what_is_not_a_key_is_refused(text):
    with pytest.raises(AnsibleFilterError):
        openpgp.openpgp_fingerprints(text)


def playbook(cloud: dict, key: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(REPO / ".venv/bin/ansible-playbook"),
            "-i",
            str(Path(cloud["state_dir"]) / "inventory.yml"),
            "--limit",
            "student-01",
            "tests/playbooks/nvidia-repository.yml",
            "-e",
            "nvidia_toolkit_repo_base_url=http://mirror.classroom.invalid/libnvidia-container",
            "-e",
            f"nvidia_toolkit_gpg_key_file={key}",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_the_role_refuses_a_key_that_is_not_the_pinned_one(lab_cloud, keys, tmp_path):
    key = tmp_path / "key.asc"
    key.write_text(keys["rsa"])
    actual = openpgp.openpgp_fingerprints(keys["rsa"])[0]
    vm = lab_cloud["vms"][0]
    ssh = Path(lab_cloud["state_dir"]) / "ssh"
    target = SshTarget(vm["ip"], "admin", ssh / "id_ed25519", ssh / "known_hosts")
    # The shared VM as this test needs it, whatever ran before (an interrupted run of it
    # leaves its source): no NVIDIA source of any name.
    with connect(target) as conn:
        conn.sudo(
            "sh -c 'grep -ls libnvidia-container /etc/apt/sources.list.d/* | xargs -r rm -f'",
            hide=True,
            warn=True,
        )
    try:
        refused = playbook(lab_cloud, key)  # the default pin: NVIDIA's key
        assert refused.returncode != 0
        assert actual in refused.stdout, refused.stdout[-3000:]
        assert "not NVIDIA's C95B321B61E88C1809C4F759DDCAE044F796ECB0" in refused.stdout
        with connect(target) as conn:
            assert conn.run(f"test -e {SOURCE}", warn=True, hide=True).failed, "written anyway"
        spaced = " ".join(actual[i : i + 4] for i in range(0, len(actual), 4))
        accepted = playbook(lab_cloud, key, "-e", f"nvidia_toolkit_gpg_fingerprint='{spaced}'")
        assert accepted.returncode == 0, accepted.stdout[-2000:]
        with connect(target) as conn:
            written = conn.sudo(f"cat {SOURCE}", hide=True).stdout
        assert "BEGIN PGP PUBLIC KEY BLOCK" in written
        assert keys["rsa"].strip().splitlines()[2] in written  # this key, not another
    finally:
        with connect(target) as conn:
            conn.sudo(f"rm -f {SOURCE}", hide=True)
