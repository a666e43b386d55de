"""Every role's Molecule scenarios (converge, idempotence, verify) on a one-VM lab cloud."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.labcloud

SCENARIOS = sorted(REPO.glob("roles/*/molecule/*/molecule.yml"))


@pytest.mark.parametrize(
    "scenario", SCENARIOS, ids=[f"{p.parts[-4]}-{p.parts[-2]}" for p in SCENARIOS]
)
def test_molecule_scenario(scenario: Path, tmp_path: Path) -> None:
    role_dir = scenario.parents[2]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "NO_COLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    env.pop("WORKSHOP_STATE_DIR", None)  # each scenario keeps its cohort in its own dir
    result = subprocess.run(
        ["molecule", "test", "--scenario-name", scenario.parent.name],
        cwd=role_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log = tmp_path / "molecule.log"
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (
        f"molecule failed; tail of {log}:\n" + (result.stdout + result.stderr)[-4000:]
    )


def test_every_role_has_a_scenario() -> None:
    roles = {p.name for p in (REPO / "roles").iterdir() if p.is_dir()}
    tested = {p.parts[-4] for p in SCENARIOS}
    assert roles == tested
