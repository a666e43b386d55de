"""Shared fixtures: a real lab cloud on the local Docker engine, in a private state dir."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

REPO = Path(__file__).resolve().parent.parent
WORKSHOP = Path(sys.executable).parent / "workshop"
# Headless Chromium as the tests run it: no background traffic (this machine's closed
# network refuses it), no sandbox (root), a profile given per call (--user-data-dir).
CHROMIUM = [
    "chromium",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The Molecule scenarios' tests last: they run in the background from the moment
    the lab cloud is up (tests/roles/test_molecule.py) and only collect results."""
    items.sort(
        key=lambda item: item.module is not None and item.module.__name__.endswith("test_molecule")
    )


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test cohort keeps its state here, not in the checkout's state/."""
    root = tmp_path_factory.mktemp("state")
    previous = os.environ.get("WORKSHOP_STATE_DIR")
    os.environ["WORKSHOP_STATE_DIR"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("WORKSHOP_STATE_DIR", None)
    else:
        os.environ["WORKSHOP_STATE_DIR"] = previous


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    return docker.from_env()


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set for a fixture wider than a test (monkeypatch's
    scope), then as it was."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def unique_cohort(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def run_workshop(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the installed ``workshop`` command as a user would."""
    return subprocess.run(
        [str(WORKSHOP), *args], capture_output=True, text=True, check=check, cwd=REPO
    )


def labelled(engine: docker.DockerClient, cohort: str) -> dict[str, list[str]]:
    """Names of every container, volume and network carrying the cohort's label."""
    selector = {"label": [f"org.workshop.cohort={cohort}"]}
    return {
        "containers": sorted(c.name for c in engine.containers.list(all=True, filters=selector)),
        "volumes": sorted(v.name for v in engine.volumes.list(filters=selector)),
        "networks": sorted(n.name for n in engine.networks.list(filters=selector)),
    }


@pytest.fixture(scope="session")
def lab_cloud(
    state_root: Path, engine: docker.DockerClient, request: pytest.FixtureRequest
) -> Iterator[dict]:
    """A 2-VM lab cloud, brought up once for the session through the CLI, then taken down.
    Once it is up (the VM images built), the Molecule scenarios start beside the tests."""
    cohort = unique_cohort("t")
    result = run_workshop("cloud", "up", "--cohort", cohort, "--students", "2", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    from tests.roles import test_molecule

    test_molecule.start(request.session)
    yield report
    down = run_workshop("cloud", "down", "--cohort", cohort)
    assert down.returncode == 0, down.stderr
