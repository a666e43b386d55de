"""The Azure provider's share of ``scripts/bench.py``: 100 VMs up, up again and down,
through the real Azure SDKs against the local ARM server (``tests.fakes.azure_arm``);
then the same with zone 1 full (each VM's first try fails and moves to zone 2)."""

from __future__ import annotations

import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from bench_clouds import cohort_file, round_trips  # scripts/, beside this file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_azure(console: Any) -> list[tuple[str, str, str]]:
    """Rows of (what, seconds, API calls) for 100 VMs up, a second up and down."""
    sys.path.insert(0, REPO)
    from tests.fakes.azure_arm import AzureArmServer
    from tests.fakes.clouds import EntraToken
    from workshop.cloudvms import azure, spec

    with tempfile.TemporaryDirectory(prefix="bench-azure-") as root:
        arm = AzureArmServer(Path(root)).start()
        arm.limits["eastus"] = {"standardNCASv3_T4Family": 100_000.0, "cores": 100_000.0}
        try:
            config = cohort_file(
                Path(root),
                "provider: azure\nregion: eastus\nzones: ['1', '2']\n"
                "instance_types: [Standard_NC4as_T4_v3]\nimage: ubuntu-24.04\n"
                f"subscription_id: {arm.subscription}\n",
            )
            cloud = azure.AzureCloud(
                spec.load(config),
                credential=EntraToken(),
                base_url=arm.endpoint,
                ca_file=str(arm.ca_file),
            )
            runs = [("", set()), (", zone 1 full", {("1", None)})]
            return round_trips(
                console, "azure", cloud, runs, partial(setattr, arm, "full"), lambda: len(arm.calls)
            )
        finally:
            arm.stop()


if __name__ == "__main__":
    from rich.console import Console

    for row in bench_azure(Console(stderr=True)):
        print(" | ".join(row))
