"""`cloud up --provider azure` against real Azure, when asked for: it costs money.

Set WORKSHOP_LIVE_AZURE=1, credentials DefaultAzureCredential finds (`az login`, or a
service principal's AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET), and
WORKSHOP_LIVE_AZURE_COHORT (a cohort file with `provider: azure` whose subscription's quota
holds one VM). The test plans one VM, makes it, waits for its SSH banner, then removes
everything the cohort tag names and checks nothing is left: the resource group gone when
the kit made it, else no OS disk of the cohort in it. Otherwise it is skipped,
saying what is missing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from workshop import ssh
from workshop.cloudvms import spec


def test_one_vm_up_answers_ssh_and_down_leaves_nothing():
    if os.environ.get("WORKSHOP_LIVE_AZURE") != "1":
        pytest.skip("live azure VM test: set WORKSHOP_LIVE_AZURE=1 with credentials to run it")
    config = os.environ.get("WORKSHOP_LIVE_AZURE_COHORT")
    if not config:
        pytest.skip("live azure VM test: set WORKSHOP_LIVE_AZURE_COHORT to a cohort file")
    from workshop.cloudvms import azure  # the Azure SDKs take seconds to import

    cloud = azure.AzureCloud(spec.load(Path(config)))
    cohort = f"kit-live-{secrets.token_hex(3)}"
    group = cloud.group(cohort)
    kit_makes_group = not cloud.resources.resource_groups.check_existence(group)
    plan = cloud.plan(1, cohort)
    assert plan.fits, plan.problems
    try:
        report = cloud.up(cohort, ["student01"], ssh_probe=ssh.banner_answers, ssh_timeout=600)
        assert report.ready, (report.failed, report.vms)
        assert cloud.vms(cohort)[0].public_ip
    finally:
        removed = cloud.down(cohort)
    assert removed.left == []
    assert cloud.vms(cohort) == []
    if kit_makes_group:
        assert not cloud.resources.resource_groups.check_existence(group), (
            f"the kit made {group} for the cohort and down left it"
        )
    else:
        disks = [
            disk.name
            for disk in cloud.compute.disks.list_by_resource_group(group)
            if (disk.name or "").startswith(f"{cohort}-")
        ]
        assert disks == [], f"down left the cohort's OS disks {disks} in {group}"
