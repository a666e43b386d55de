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

from tests.workshop.cloudvms.test_live import live_cohort_file, new_cohort, up_and_down
from workshop.cloudvms import spec


def test_one_vm_up_answers_ssh_and_down_leaves_nothing():
    config = live_cohort_file("azure")
    from workshop.cloudvms import azure  # the Azure SDKs take seconds to import

    cloud = azure.AzureCloud(spec.load(config))
    cohort = new_cohort()
    group = cloud.group(cohort)
    kit_makes_group = not cloud.resources.resource_groups.check_existence(group)
    up_and_down(cloud, cohort)
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
