"""`bench_gcp`: `cloud up --provider gcp` of 100 VMs, a second up, and down, against the
tests' local Compute Engine server (tests/fakes/gce.py) through the real client library;
then again with one of the two zones full. Seconds and API calls (the fake counts them).
scripts/bench.py adds its rows to the table."""

from __future__ import annotations

import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from bench_clouds import cohort_file, round_trips  # scripts/, beside this file

REPO = str(Path(__file__).resolve().parent.parent)


def bench_gcp(console: Any) -> list[tuple[str, str, str]]:
    """100 VMs up, up again and down against the local Compute Engine; then one zone full."""
    sys.path.insert(0, REPO)
    from tests.fakes.gce import GceServer
    from workshop.cloudvms import gcp, spec

    fake = GceServer().start()
    # Room for 100 VMs in every quota the plan reads (a new project's would refuse them).
    fake.limits.update(
        CPUS=100_000.0, NVIDIA_T4_GPUS=100_000.0, IN_USE_ADDRESSES=100_000.0, SSD_TOTAL_GB=1e7
    )
    fake.gpus_all_regions = 100_000.0
    fake.cpus_all_regions = 100_000.0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gcp-") as root:
            config = cohort_file(
                Path(root),
                "provider: gcp\nregion: us-central1\nzones: [us-central1-a, us-central1-b]\n"
                "instance_types: [n1-standard-4]\ngpu_type: nvidia-tesla-t4\n",
            )
            # The standard chain's key file and the endpoint, as the tests give them.
            os.environ.update(
                GOOGLE_APPLICATION_CREDENTIALS=str(fake.service_account_key(Path(root))),
                WORKSHOP_GCP_ENDPOINT=fake.endpoint,
            )
            cloud = gcp.GcpCloud(spec.load(config))
            runs = [("", set()), (", zone a full", {("us-central1-a", None)})]
            return round_trips(
                console, "gcp", cloud, runs, partial(setattr, fake, "full"), lambda: len(fake.calls)
            )
    finally:
        fake.stop()


if __name__ == "__main__":
    from rich.console import Console

    for row in bench_gcp(Console(stderr=True)):
        print(" | ".join(row))
