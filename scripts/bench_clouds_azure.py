"""The Azure provider's share of ``scripts/bench.py``: 100 VMs up, up again and down,
through the real Azure SDKs against the local ARM server (``tests.fakes.azure_arm``);
then the same with zone 1 full (each VM's first try fails and moves to zone 2)."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T = TypeVar("T")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK6Q7BR7UqrYNZLSHWTzYtsv/o29zMRYlECOE28BG/4p bench\n"


def _timed(function: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = function()
    return result, time.monotonic() - started


def _answers(_ip: str, _timeout: float) -> bool:
    return True  # the fake's addresses have no machine behind them


def bench_azure(console: Any) -> list[tuple[str, str, str]]:
    """Rows of (what, seconds, API calls) for 100 VMs up, a second up and down."""
    sys.path.insert(0, REPO)
    from tests.fakes.azure_arm import AzureArmServer
    from tests.fakes.clouds import EntraToken
    from workshop.cloudvms import azure, spec

    rows: list[tuple[str, str, str]] = []
    students = [f"student{index:03d}" for index in range(1, 101)]
    with tempfile.TemporaryDirectory(prefix="bench-azure-") as root:
        arm = AzureArmServer(Path(root)).start()
        arm.limits["eastus"] = {"standardNCASv3_T4Family": 100_000.0, "cores": 100_000.0}
        try:
            key = Path(root) / "admin.pub"
            key.write_text(KEY)
            config = Path(root) / "cohort.yml"
            config.write_text(
                "provider: azure\nregion: eastus\nzones: ['1', '2']\n"
                "instance_types: [Standard_NC4as_T4_v3]\nimage: ubuntu-24.04\n"
                f"ssh_public_key: {key}\nallow_from: [198.51.100.0/24]\n"
                f"subscription_id: {arm.subscription}\n"
            )
            cloud = azure.AzureCloud(
                spec.load(config),
                credential=EntraToken(),
                base_url=arm.endpoint,
                ca_file=str(arm.ca_file),
            )
            for label, full in (("", set()), (", zone 1 full", {("1", None)})):
                arm.full = set(full)
                cohort = f"bench-{secrets.token_hex(3)}"
                console.print(f"[dim]azure: up of 100 VMs{label}...[/]")
                before = len(arm.calls)
                report, up = _timed(partial(cloud.up, cohort, students, ssh_probe=_answers))
                made = f"{len(report.created)} made, {len(report.failed)} failed"
                rows.append(
                    (
                        f"azure up 100 VMs (fake ARM){label}",
                        f"{up:.1f} s",
                        f"{len(arm.calls) - before} API calls, 8 at a time; {made}",
                    )
                )
                before = len(arm.calls)
                _, again = _timed(partial(cloud.up, cohort, students, ssh_probe=_answers))
                rows.append(
                    (
                        f"azure second up{label}",
                        f"{again:.1f} s",
                        f"{len(arm.calls) - before} API calls",
                    )
                )
                before = len(arm.calls)
                down, seconds = _timed(partial(cloud.down, cohort))
                rows.append(
                    (
                        f"azure down 100 VMs{label}",
                        f"{seconds:.1f} s",
                        f"{len(down.terminated)} deleted, {len(down.left)} left, "
                        f"{len(arm.calls) - before} API calls",
                    )
                )
        finally:
            arm.stop()
    return rows


if __name__ == "__main__":
    from rich.console import Console

    for row in bench_azure(Console(stderr=True)):
        print(" | ".join(row))
