"""`bench_gcp`: `cloud up --provider gcp` of 100 VMs, a second up, and down, against the
tests' local Compute Engine server (tests/fakes/gce.py) through the real client library;
then again with one of the two zones full. Seconds and API calls (the fake counts them).
scripts/bench.py adds its rows to the table."""

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

REPO = str(Path(__file__).resolve().parent.parent)
T = TypeVar("T")
VMS = 100


def timed(function: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = function()
    return result, time.monotonic() - started


def bench_gcp(console: Any) -> list[tuple[str, str, str]]:
    """100 VMs up, up again and down against the local Compute Engine; then one zone full."""
    sys.path.insert(0, REPO)
    from tests.fakes.gce import GceServer
    from workshop.cloudvms import gcp, spec
    from workshop.cloudvms.model import UpReport

    fake = GceServer().start()
    # Room for 100 VMs in every quota the plan reads (a new project's would refuse them).
    fake.limits.update(
        CPUS=100_000.0, NVIDIA_T4_GPUS=100_000.0, IN_USE_ADDRESSES=100_000.0, SSD_TOTAL_GB=1e7
    )
    fake.gpus_all_regions = 100_000.0
    fake.cpus_all_regions = 100_000.0
    rows: list[tuple[str, str, str]] = []
    students = [f"student{index:03d}" for index in range(1, VMS + 1)]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gcp-") as root:
            key = os.path.join(root, "admin.pub")
            with open(key, "w") as handle:
                handle.write(
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK6Q7BR7UqrYNZLSHWTzYtsv/o29zMRYlECOE28BG"
                    "/4p bench\n"
                )
            config = os.path.join(root, "cohort.yml")
            with open(config, "w") as handle:
                handle.write(
                    "provider: gcp\nregion: us-central1\nzones: [us-central1-a, us-central1-b]\n"
                    "instance_types: [n1-standard-4]\ngpu_type: nvidia-tesla-t4\n"
                    f"ssh_public_key: {key}\nallow_from: [198.51.100.0/24]\n"
                )
            # The standard chain's key file and the endpoint, as the tests give them.
            os.environ.update(
                GOOGLE_APPLICATION_CREDENTIALS=str(fake.service_account_key(Path(root))),
                WORKSHOP_GCP_ENDPOINT=fake.endpoint,
            )
            cloud = gcp.GcpCloud(spec.load(Path(config)))
            runs: list[tuple[str, set[tuple[str, str | None]]]] = [
                ("", set()),
                (", zone a full", {("us-central1-a", None)}),
            ]
            for label, full in runs:
                fake.full = full
                cohort = f"bench-{secrets.token_hex(3)}"
                console.print(f"[dim]gcp: up of {VMS} VMs{label}...[/]")
                fake.calls.clear()

                def up_once(c: str = cohort) -> UpReport:
                    return cloud.up(c, students, ssh_probe=lambda _ip, _wait: True)

                report, up = timed(up_once)
                made = f"{len(report.created)} made, {len(report.failed)} failed"
                rows.append(
                    (
                        f"gcp up {VMS} VMs (local Compute Engine){label}",
                        f"{up:.1f} s",
                        f"{len(fake.calls)} API calls, 8 at a time; {made}",
                    )
                )
                fake.calls.clear()
                _, again = timed(up_once)
                rows.append(
                    (f"gcp second up{label}", f"{again:.1f} s", f"{len(fake.calls)} API calls")
                )
                fake.calls.clear()
                down, seconds = timed(partial(cloud.down, cohort))
                rows.append(
                    (
                        f"gcp down {VMS} VMs{label}",
                        f"{seconds:.1f} s",
                        f"{len(down.terminated)} deleted, {len(fake.calls)} API calls",
                    )
                )
    finally:
        fake.stop()
    return rows


if __name__ == "__main__":
    from rich.console import Console

    for row in bench_gcp(Console(stderr=True)):
        print(" | ".join(row))
