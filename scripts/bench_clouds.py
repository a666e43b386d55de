"""What the three cloud benches share: the cohort file they write, and the round trip they
time (100 VMs up, up again, down; then again with a zone full), counting API calls."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

VMS = 100
STUDENTS = [f"student{index:03d}" for index in range(1, VMS + 1)]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK6Q7BR7UqrYNZLSHWTzYtsv/o29zMRYlECOE28BG/4p bench\n"


def cohort_file(root: Path, settings: str) -> Path:
    """``root/cohort.yml``: ``settings`` (provider, region, zones, types...), the bench's
    admin key and a classroom network."""
    key = root / "admin.pub"
    key.write_text(KEY)
    config = root / "cohort.yml"
    config.write_text(f"{settings}ssh_public_key: {key}\nallow_from: [198.51.100.0/24]\n")
    return config


def _answers(_ip: str, _timeout: float) -> bool:
    return True  # the fakes' addresses have no machine behind them


def round_trips(
    console: Any,
    name: str,
    cloud: Any,
    runs: list[tuple[str, Any]],
    make_full: Callable[[Any], None],
    calls: Callable[[], int],
) -> list[tuple[str, str, str]]:
    """For each (label, full zones) of ``runs``: up of VMS VMs, a second up, down; a row
    each with the seconds and the API calls (``calls()``: the fake's count so far)."""
    rows: list[tuple[str, str, str]] = []
    for label, full in runs:
        make_full(full)
        cohort = f"bench-{secrets.token_hex(3)}"
        console.print(f"[dim]{name}: up of {VMS} VMs{label}...[/]")
        for step in ("up", "second up", "down"):
            before, started = calls(), time.monotonic()
            if step == "down":
                down = cloud.down(cohort)
                note = f"{len(down.terminated)} deleted, {len(down.left)} left, "
            else:
                report = cloud.up(cohort, STUDENTS, ssh_probe=_answers)
                note = (
                    f"{len(report.created)} made, {len(report.failed)} failed, "
                    if step == "up"
                    else ""
                )
            seconds = time.monotonic() - started
            what = f"{name} {step} {VMS} VMs" if step != "second up" else f"{name} second up"
            rows.append(
                (f"{what}{label}", f"{seconds:.1f} s", f"{note}{calls() - before} API calls")
            )
    return rows
