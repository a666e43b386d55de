"""The Ansible side passes the linters the issue names: yamllint and ansible-lint's
production profile (FQCN modules, role-prefixed variables, named tasks, no skips)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NO_COLOR": "1"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)


def test_yamllint_passes():
    result = run(str(BIN / "yamllint"), "--strict", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile_passes():
    result = run(str(BIN / "ansible-lint"), "--nocolor", "--profile", "production")
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr
