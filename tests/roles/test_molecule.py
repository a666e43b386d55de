"""Every role's Molecule scenarios (converge, idempotence, verify) on a one-VM lab cloud.

Each scenario has a cohort (and so a VM, network and registry) of its own, so the selected
scenarios run two at a time (``WORKSHOP_MOLECULE_PARALLEL``): most of a scenario's time
is spent waiting on SSH and apt, not on this machine's two cores. They start in the
background as soon as the session's lab cloud is up (its images built: ``start``, called
by the ``lab_cloud`` fixture), so they run beside the other tests; the tests here collect
their results (or start them, when no other test brought a lab cloud up)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.labcloud

SCENARIOS = sorted(REPO.glob("roles/*/molecule/*/molecule.yml"))
PARALLEL = int(os.environ.get("WORKSHOP_MOLECULE_PARALLEL", "2"))
_RUNS: dict[Path, Future] = {}
_POOL: list[ThreadPoolExecutor] = []


def molecule_test(scenario: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "NO_COLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    env.pop("WORKSHOP_STATE_DIR", None)  # each scenario keeps its cohort in its own dir
    return subprocess.run(
        ["molecule", "test", "--scenario-name", scenario.parent.name],
        cwd=scenario.parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def start(session: pytest.Session) -> dict[Path, Future]:
    """Start `molecule test` of every scenario this session selected (once)."""
    if not _POOL:
        selected = [
            item.callspec.params["scenario"]
            for item in session.items
            if item.module.__name__ == __name__ and hasattr(item, "callspec")
        ]
        _POOL.append(ThreadPoolExecutor(max_workers=max(1, PARALLEL)))
        _RUNS.update({scenario: _POOL[0].submit(molecule_test, scenario) for scenario in selected})
    return _RUNS


@pytest.fixture(scope="module")
def molecule_runs(request: pytest.FixtureRequest) -> Iterator[dict[Path, Future]]:
    """The scenarios' runs, started in the background earlier or now."""
    yield start(request.session)
    _POOL[0].shutdown(wait=True)


@pytest.mark.parametrize(
    "scenario", SCENARIOS, ids=[f"{p.parts[-4]}-{p.parts[-2]}" for p in SCENARIOS]
)
def test_molecule_scenario(scenario: Path, molecule_runs, tmp_path: Path) -> None:
    result = molecule_runs[scenario].result()
    log = tmp_path / "molecule.log"
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (
        f"molecule failed; tail of {log}:\n" + (result.stdout + result.stderr)[-4000:]
    )


def test_every_role_has_a_scenario() -> None:
    roles = {p.name for p in (REPO / "roles").iterdir() if p.is_dir()}
    tested = {p.parts[-4] for p in SCENARIOS}
    assert roles == tested
