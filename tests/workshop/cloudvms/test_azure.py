"""A cohort's VMs in Azure, through the real azure-mgmt-compute, -network and -resource
clients against a local server speaking ARM (``tests.fakes.azure_arm``): it checks the
bearer token's audience, runs PUTs and DELETEs as long-running operations, keeps usages
and quotas, and refuses what ARM refuses (quota, full zones, names, resources in use).
SSH: the fake's addresses have no machine behind them, so the probe is given."""

from __future__ import annotations

import json
import os
import subprocess
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import VirtualMachine
from azure.mgmt.network.models import NetworkSecurityGroup
from packaging.requirements import Requirement

from tests.conftest import REPO, WORKSHOP, unique_cohort
from tests.fakes.azure_arm import SUBSCRIPTION
from tests.fakes.clouds import EntraToken
from tests.workshop.cloudvms.values import AZURE_FAMILY, AZURE_LOCATION, AZURE_PLENTY, KEY
from workshop.cloudvms import azure, spec
from workshop.errors import WorkshopError

LOCATION = AZURE_LOCATION
T4 = "Standard_NC4as_T4_v3"
BIGGER = "Standard_NC8as_T4_v3"
FAMILY = AZURE_FAMILY
PLENTY = AZURE_PLENTY


@pytest.fixture(scope="module")
def arm(azure_arm):
    return azure_arm


@pytest.fixture(autouse=True)
def plenty(arm):
    """Each test starts with room and capacity, whatever the one before did."""
    arm.limits[LOCATION] = {FAMILY: PLENTY, "standardDSv5Family": PLENTY, "cores": PLENTY}
    arm.full.clear()
    arm.restricted.clear()
    arm.throttle = 0
    arm.nic_reserved_seconds = 0.5
    arm.forbidden.clear()
    arm.generations.clear()


def cohort_file(arm, **overrides) -> Path:
    content = {
        "provider": "azure",
        "region": LOCATION,
        "zones": ["1", "2"],
        "instance_types": [T4, BIGGER],
        "image": "ubuntu-24.04",
        "disk_gb": 128,
        "ssh_public_key": str(arm.dir / "admin.pub"),
        "allow_from": ["203.0.113.0/24"],
        "lab_ports": [8000, 8080],
        "hours": 8,
        "expires_at": "2026-12-01T18:00:00Z",
        "prices": {T4: 0.526, BIGGER: 0.752},
        "subscription_id": SUBSCRIPTION,
        **overrides,
    }
    path = arm.dir / f"cohort-{unique_cohort('f')}.yml"
    path.write_text(yaml.safe_dump(content))
    return path


def cloud_for(arm, credential=None, **overrides) -> azure.AzureCloud:
    return azure.AzureCloud(
        spec.load(cohort_file(arm, **overrides)),
        credential=credential or EntraToken(),
        base_url=arm.endpoint,
        ca_file=str(arm.ca_file),
        polling_interval=0,
    )


def answers(_ip: str, _timeout: float) -> bool:
    return True


def tagged(arm, cohort: str) -> dict[str, list[str]]:
    """Names of everything carrying the cohort's tag, by type."""
    found: dict[str, list[str]] = {}
    with arm.lock:
        for resource in arm.resources.values():
            if resource["tags"].get("workshop-cohort") == cohort:
                found.setdefault(resource["type"].rsplit("/", 1)[-1], []).append(resource["name"])
        groups = [
            g["name"] for g in arm.groups.values() if g["tags"].get("workshop-cohort") == cohort
        ]
    if groups:
        found["resourceGroups"] = groups
    return {kind: sorted(names) for kind, names in found.items()}


def in_group(arm, group: str) -> list[str]:
    with arm.lock:
        return sorted(
            f"{r['type'].rsplit('/', 1)[-1]} {r['name']}"
            for r in arm.resources.values()
            if r["group"] == group
        )


def test_the_plan_says_what_the_cohort_needs_has_and_costs(arm):
    plan = cloud_for(arm).plan(3)
    assert plan.fits, plan.problems
    assert (plan.instance_type, plan.vcpus_per_vm, plan.gpus_per_vm) == (T4, 4, 1)
    assert (plan.quota_code, plan.quota_vcpus, plan.needed_vcpus) == (FAMILY, PLENTY, 12)
    assert plan.quota_name == "Standard NCASv3_T4 Family vCPUs"
    assert plan.offered == {T4: ["1", "2"], BIGGER: ["1", "2"]}
    assert plan.image == "Canonical:ubuntu-24_04-lts:server:latest"
    assert plan.total_usd == round(3 * 0.526 * 8, 2)


def test_a_cohort_over_the_quota_is_refused_with_the_numbers_and_nothing_is_made(arm):
    cohort = unique_cohort("quota")
    cloud = cloud_for(arm)
    used = cloud.plan(1).used_vcpus  # what other tests left running
    arm.limits[LOCATION][FAMILY] = used + 8.0
    calls = len(arm.calls)
    with pytest.raises(WorkshopError) as refused:
        cloud.up(cohort, ["student01", "student02", "student03"], ssh_probe=answers)
    message = str(refused.value)
    assert "needs 12 vCPUs" in message
    assert f"'Standard NCASv3_T4 Family vCPUs' ({FAMILY})" in message
    assert f"8 are free ({used + 8} in the quota, {used} in use)" in message
    assert f"request at least {used + 12}" in message
    assert not any(call.startswith(("PUT", "DELETE")) for call in arm.calls[calls:])
    assert tagged(arm, cohort) == {}


def test_the_regional_vcpu_quota_counts_too_and_the_cohorts_own_vms_once(arm):
    cohort = unique_cohort("twice")
    cloud = cloud_for(arm)
    used = arm.usage(LOCATION)["cores"]
    arm.limits[LOCATION]["cores"] = used + 8.0  # room for exactly two
    cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    again, more = cloud.plan(2, cohort), cloud.plan(3, cohort)
    assert again.fits, again.problems
    assert again.needed_vcpus == 0
    assert not more.fits
    assert "'Total Regional vCPUs' (cores)" in more.problems[0]


def test_a_new_subscription_has_no_gpu_quota_and_is_told_so(arm):
    arm.limits[LOCATION] = {"cores": PLENTY}
    plan = cloud_for(arm).plan(1)
    assert not plan.fits
    assert f"0 are free (0 in the quota, {plan.used_vcpus} in use)" in plan.problems[0]
    assert "new subscriptions start at 0 for GPU families" in plan.problems[0]
    assert "Quotas" in plan.problems[0]


def test_sizes_not_offered_in_the_zones_and_a_missing_image_are_named(arm):
    arm.restricted[(LOCATION, T4)] = {"type": "Location"}
    arm.restricted[(LOCATION, BIGGER)] = {"type": "Zone", "zones": ["1", "2"]}
    plan = cloud_for(arm, image="Canonical:nosuch:server:latest").plan(2)
    assert not plan.fits
    assert any("image Canonical:nosuch:server:latest does not exist" in p for p in plan.problems)
    assert any(f"none of {T4}, {BIGGER} is offered" in p for p in plan.problems)
    arm.restricted[(LOCATION, T4)] = {"type": "Zone", "zones": ["1"]}
    assert cloud_for(arm).plan(1).offered[T4] == ["2"]


def test_up_tags_each_resource_and_opens_only_the_lab_ports(arm):
    """(A second up making none: test_contract.py.)"""
    cohort = unique_cohort("up")
    cloud = cloud_for(arm)
    students = ["student01", "student02", "student03"]
    first = cloud.up(cohort, students, ssh_probe=answers)
    assert first.ready, first.failed
    assert sorted(first.created) == students
    made = tagged(arm, cohort)
    names = [f"{cohort}-{s}" for s in students]
    assert made == {
        "virtualMachines": names,
        "networkInterfaces": [f"{n}-nic" for n in names],
        "publicIPAddresses": [f"{n}-ip" for n in names],
        "networkSecurityGroups": [f"workshop-{cohort}-nsg"],
        "virtualNetworks": [f"workshop-{cohort}-vnet"],
        "resourceGroups": [f"workshop-{cohort}"],
    }
    for vm in arm.of_type("virtualMachines", f"workshop-{cohort}"):
        assert vm["tags"]["workshop-student"] in students
        assert vm["tags"]["workshop-expires"].startswith("2026-12-01T18:00:00")
        linux = vm["properties"]["osProfile"]["linuxConfiguration"]
        assert linux["disablePasswordAuthentication"] is True
        assert linux["ssh"]["publicKeys"][0]["keyData"] == KEY.strip()
        assert vm["properties"]["storageProfile"]["osDisk"]["diskSizeGB"] == 128
    assert all(vm.public_ip and vm.state == "running" for vm in first.vms)
    nsg = arm.of_type("networkSecurityGroups", f"workshop-{cohort}")[0]
    opened = {
        (r["properties"]["destinationPortRange"], tuple(r["properties"]["sourceAddressPrefixes"]))
        for r in nsg["properties"]["securityRules"]
    }
    assert opened == {(str(port), ("203.0.113.0/24",)) for port in (22, 8000, 8080)}


def test_a_full_zone_moves_on_to_the_next_zone_then_size_and_a_full_region_is_named(arm):
    cloud = cloud_for(arm)
    arm.full = {("1", None)}
    refusals = len(arm.refused)
    moved = cloud.up(unique_cohort("zone"), ["student01"], ssh_probe=answers)
    assert [(vm.zone, vm.instance_type, vm.state) for vm in moved.vms] == [("2", T4, "running")]
    # The failed try's VM was deleted and its NIC, reserved for it a while, reused: the
    # next zone's try waited until ARM let it attach the NIC.
    assert "NicReservedForAnotherVm" in arm.refused[refusals:]
    arm.full = {("1", T4), ("2", T4)}
    other = cloud.up(unique_cohort("size"), ["student01"], ssh_probe=answers)
    assert [(vm.zone, vm.instance_type) for vm in other.vms] == [("1", BIGGER)]
    arm.full = {("1", None), ("2", None)}
    cohort = unique_cohort("full")
    full = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert not full.ready
    assert set(full.failed) == {"student01", "student02"}
    assert "ZonalAllocationFailed" in full.failed["student01"]
    assert f"{BIGGER} in zone 2" in full.failed["student01"]
    group = f"workshop-{cohort}"
    with arm.lock:
        untagged = [
            r["name"]
            for r in arm.resources.values()
            if r["group"] == group and r["tags"].get("workshop-cohort") != cohort
        ]
    assert untagged == [], "the failed run left nothing untagged (no Failed VM, no disk)"
    assert "virtualMachines" not in tagged(arm, cohort)
    arm.full.clear()
    completed = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert sorted(completed.created) == ["student01", "student02"]


def test_throttling_is_backed_off_as_retry_after_says(arm):
    cloud = cloud_for(arm)
    arm.throttle, arm.retry_after = 2, 1  # two 429s, each saying: wait a second
    started = time.monotonic()
    report = cloud.up(unique_cohort("slow"), ["student01"], ssh_probe=answers)
    assert report.ready, report.failed
    assert len(arm.throttled) >= 2
    assert time.monotonic() - started >= 2.0, "each 429 waited Retry-After"


def test_a_students_second_vm_is_removed_and_the_oldest_kept(arm):
    cohort = unique_cohort("dup")
    cloud = cloud_for(arm)
    first = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    keep = next(vm.instance_id for vm in first.vms if vm.student == "student01")
    group = f"workshop-{cohort}"
    # What another `up` at once made under another name for the same student.
    network = cloud.network
    ip = network.public_ip_addresses.begin_create_or_update(
        group, "extra-ip", {"location": LOCATION, "sku": {"name": "Standard"}, "properties": {}}
    ).result()
    subnet = network.virtual_networks.get(group, f"workshop-{cohort}-vnet").properties.subnets[0].id
    nic = network.network_interfaces.begin_create_or_update(
        group,
        "extra-nic",
        {
            "location": LOCATION,
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {"subnet": {"id": subnet}, "publicIPAddress": {"id": ip.id}},
                    }
                ]
            },
        },
    ).result()
    body = arm.of_type("virtualMachines", group)[0]
    extra = {
        "location": LOCATION,
        "zones": ["1"],
        "tags": {"workshop-cohort": cohort, "workshop-student": "student01"},
        "properties": {
            **{k: body["properties"][k] for k in ("hardwareProfile", "osProfile")},
            "storageProfile": {
                **body["properties"]["storageProfile"],
                "osDisk": {"createOption": "FromImage"},
            },
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
        },
    }
    cloud.compute.virtual_machines.begin_create_or_update(group, "extra-vm", extra).result()
    again = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert again.duplicates_removed == ["extra-vm"]
    assert [vm.instance_id for vm in again.vms if vm.student == "student01"] == [keep]


def test_a_vm_that_never_answers_ssh_is_named(arm):
    silent: set[str] = set()

    def probe(ip: str, _timeout: float) -> bool:
        if not silent:
            silent.add(ip)
        return ip not in silent

    cohort = unique_cohort("ssh")
    report = cloud_for(arm).up(cohort, ["student01", "student02"], ssh_probe=probe)
    assert not report.ready
    (quiet,) = silent
    named = {vm.student: (vm.public_ip, vm.ssh_ok) for vm in report.vms}
    who = next(student for student, (ip, _) in named.items() if ip == quiet)
    other = ({"student01", "student02"} - {who}).pop()
    assert named[who] == (quiet, False)
    assert named[other][1] is True
    assert named[other][0] != quiet
    addresses = {
        ip["name"]: ip["properties"]["ipAddress"]
        for ip in arm.of_type("publicIPAddresses", f"workshop-{cohort}")
    }
    assert addresses[f"{cohort}-{who}-ip"] == quiet, "the silent VM is named by its own IP"


def test_the_power_state_is_read_from_each_vms_instance_view(arm):
    """ARM lists VMs without their instance view ($expand=instanceView needs a scale set's
    $filter), so the power state is each VM's own instance view."""
    cohort = unique_cohort("power")
    cloud = cloud_for(arm)
    cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    group = f"workshop-{cohort}"
    with pytest.raises(HttpResponseError, match="InvalidParameter"):
        list(cloud.compute.virtual_machines.list(group, expand="instanceView"))
    assert all(
        vm.properties.instance_view is None for vm in cloud.compute.virtual_machines.list(group)
    )
    stopped = next(
        vm for vm in arm.of_type("virtualMachines", group) if vm["name"].endswith("student02")
    )
    stopped["power"] = "deallocated"  # stopped in the portal
    assert [(vm.student, vm.state) for vm in cloud.vms(cohort)] == [
        ("student01", "running"),
        ("student02", "deallocated"),
    ]
    seen: list[str] = []

    def probe(ip: str, _timeout: float) -> bool:
        seen.append(ip)
        return True

    again = cloud.up(cohort, ["student01", "student02"], ssh_probe=probe)
    assert [(vm.student, vm.ssh_ok) for vm in again.vms] == [
        ("student01", True),
        ("student02", False),
    ], "a deallocated VM is not probed"
    assert len(seen) == 1


def test_down_waits_out_the_nic_a_deleted_vm_still_reserves(arm):
    """A deleted VM's NIC is reserved for it a while (180 s in ARM): a NIC delete right away
    is refused (NicReservedForAnotherVm); down waits it out and leaves nothing."""
    arm.nic_reserved_seconds = 30.0
    cohort = unique_cohort("reserved")
    cloud = cloud_for(arm)
    cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    cloud.nic_patience = 0.2  # less than the reservation: down names what it left
    refusals = len(arm.refused)
    first = cloud.down(cohort)
    assert sorted(first.terminated) == [f"{cohort}-student0{i}" for i in (1, 2)]
    assert any(
        f"{cohort}-student01-nic" in why and "NicReservedForAnotherVm" in why for why in first.left
    ), first.left
    assert f"workshop-{cohort}".lower() in arm.groups, "a group with something left stays"
    with arm.lock:  # the reservation ends a second from now, within down's patience
        arm.reserved_nics = {
            nic: (vm, time.monotonic() + 1.0) for nic, (vm, _) in arm.reserved_nics.items()
        }
    cloud.nic_patience = azure.NIC_RESERVED_PATIENCE
    report = cloud.down(cohort)
    assert report.left == []
    assert "NicReservedForAnotherVm" in arm.refused[refusals:], "the reservation was met"
    assert sorted(report.other)[:2] == [f"nic {cohort}-student0{i}-nic" for i in (1, 2)]
    assert f"resource-group workshop-{cohort}" in report.other
    assert f"workshop-{cohort}".lower() not in arm.groups


def test_down_removes_exactly_the_cohort_in_order_and_is_safe_to_repeat(arm):
    shared = unique_cohort("shared")
    cloud = cloud_for(arm, resource_group=shared)
    kept, removed = unique_cohort("kept"), unique_cohort("gone")
    cloud.up(kept, ["student01"], ssh_probe=answers)
    cloud.up(removed, ["student01", "student02"], ssh_probe=answers)
    # An untagged VM someone made by hand in the same group, on the kept cohort's network.
    network = cloud.network
    subnet = network.virtual_networks.get(shared, f"workshop-{kept}-vnet").properties.subnets[0].id
    nic = network.network_interfaces.begin_create_or_update(
        shared,
        "by-hand-nic",
        {
            "location": LOCATION,
            "properties": {
                "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet}}}]
            },
        },
    ).result()
    template = arm.of_type("virtualMachines", shared)[0]["properties"]
    cloud.compute.virtual_machines.begin_create_or_update(
        shared,
        "by-hand",
        {
            "location": LOCATION,
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
                "osProfile": {**template["osProfile"], "computerName": "by-hand"},
                "storageProfile": {
                    "imageReference": template["storageProfile"]["imageReference"],
                    "osDisk": {"createOption": "FromImage", "name": "by-hand-osdisk"},
                },
                "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
            },
        },
    ).result()
    before_kept = tagged(arm, kept)
    before = set(in_group(arm, shared))
    report = cloud.down(removed)
    assert report.left == []
    assert sorted(report.terminated) == [f"{removed}-student01", f"{removed}-student02"]
    assert report.security_groups == [f"workshop-{removed}-nsg"]
    assert sorted(report.other) == sorted(
        [f"nic {removed}-student0{i}-nic" for i in (1, 2)]
        + [f"public-ip {removed}-student0{i}-ip" for i in (1, 2)]
        + [f"vnet workshop-{removed}-vnet"]
    ), "the shared group, made for the other cohort, stays"
    assert tagged(arm, removed) == {}
    assert tagged(arm, kept) == before_kept
    gone = before - set(in_group(arm, shared))
    assert all(removed in item for item in gone)
    assert "virtualMachines by-hand" in in_group(arm, shared)
    assert "disks by-hand-osdisk" in in_group(arm, shared)
    again = cloud.down(removed)
    assert (again.terminated, again.security_groups, again.other, again.left) == ([], [], [], [])


def test_down_takes_the_cohorts_own_group_and_a_leftover_disk(arm):
    cohort = unique_cohort("disk")
    cloud = cloud_for(arm)
    cloud.up(cohort, ["student01"], ssh_probe=answers)
    group = f"workshop-{cohort}"
    vm = arm.of_type("virtualMachines", group)[0]
    vm["properties"]["storageProfile"]["osDisk"]["deleteOption"] = "Detach"  # made by hand so
    report = cloud.down(cohort)
    assert report.left == []
    assert report.volumes == [f"{cohort}-student01-osdisk"]
    assert f"resource-group {group}" in report.other
    assert group.lower() not in arm.groups
    assert cloud.down(cohort).other == []


def test_down_names_what_it_could_not_remove(arm):
    cohort = unique_cohort("stuck")
    cloud = cloud_for(arm)
    cloud.up(cohort, ["student01"], ssh_probe=answers)
    group = f"workshop-{cohort}"
    nic = arm.of_type("networkInterfaces", group)[0]
    nic["tags"] = {}  # a NIC the cohort no longer claims still holds its IP, NSG and subnet
    report = cloud.down(cohort)
    assert any("PublicIPAddressCannotBeDeleted" in why for why in report.left)
    assert any("InUseNetworkSecurityGroupCannotBeDeleted" in why for why in report.left)
    assert any("InUseSubnetCannotBeDeleted" in why for why in report.left)
    assert group.lower() in arm.groups, "a group with something left in it stays"


def test_missing_credentials_and_subscription_name_the_fix(arm, monkeypatch, tmp_path):
    for variable in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_SUBSCRIPTION_ID",
    ):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no az, azd or pwsh to fall back on
    with pytest.raises(WorkshopError, match=r"subscription_id:.*AZURE_SUBSCRIPTION_ID"):
        azure.AzureCloud(spec.load(cohort_file(arm, subscription_id=None)))
    cloud = azure.AzureCloud(
        spec.load(cohort_file(arm)), base_url=arm.endpoint, ca_file=str(arm.ca_file)
    )
    with pytest.raises(WorkshopError, match=r"azure: no usable credentials.*az login"):
        cloud.plan(1)
    wrong = cloud_for(arm, credential=EntraToken("expired"))
    with pytest.raises(WorkshopError, match=r"azure: no usable credentials"):
        wrong.plan(1)
    unknown = cloud_for(arm, subscription_id="99999999-0000-0000-0000-000000000000")
    with pytest.raises(WorkshopError, match=r"subscription 99999999-.* not found"):
        unknown.plan(1)


def test_an_invalid_cohort_name_is_refused_before_anything_is_made(arm):
    cohort = "x" * 60
    calls = len(arm.calls)
    with pytest.raises(WorkshopError, match="cannot name its VMs"):
        cloud_for(arm).up(cohort, ["student01"], ssh_probe=answers)
    assert arm.calls[calls:] == []
    assert not cloud_for(arm).plan(1, "-bad").fits


def test_the_fake_refuses_what_arm_refuses(arm):
    """The refusals the kit's code never meets, so the fake stays honest."""
    cloud = cloud_for(arm)
    cohort = unique_cohort("refuse")
    cloud.up(cohort, ["student01"], ssh_probe=answers)
    group = f"workshop-{cohort}"
    vm = arm.of_type("virtualMachines", group)[0]
    body = {
        "location": LOCATION,
        "zones": ["1"],
        "properties": json.loads(json.dumps(vm["properties"])),
    }
    body["properties"]["osProfile"]["linuxConfiguration"] = {"disablePasswordAuthentication": True}
    with pytest.raises(HttpResponseError, match="Authentication using either SSH"):
        cloud.compute.virtual_machines.begin_create_or_update(group, "nokey", body)
    body["properties"]["osProfile"]["linuxConfiguration"] = vm["properties"]["osProfile"][
        "linuxConfiguration"
    ]
    body["properties"]["osProfile"]["adminUsername"] = "root"
    with pytest.raises(HttpResponseError, match="Admin Username specified is not allowed"):
        cloud.compute.virtual_machines.begin_create_or_update(group, "rootadmin", body)
    with pytest.raises(HttpResponseError, match="InvalidResourceReference"):
        cloud.network.network_interfaces.begin_create_or_update(
            group,
            "lost-nic",
            {
                "location": LOCATION,
                "properties": {
                    "ipConfigurations": [
                        {"name": "c", "properties": {"subnet": {"id": "/subscriptions/x/nosuch"}}}
                    ]
                },
            },
        )
    with pytest.raises(HttpResponseError, match="LocationNotAvailableForResourceType"):
        list(cloud.compute.usage.list("atlantis"))
    with pytest.raises(HttpResponseError, match="NicInUse"):
        cloud.network.network_interfaces.begin_delete(group, f"{cohort}-student01-nic")


def test_the_cli_creates_writes_the_inventory_and_removes(arm, state_root):
    """`workshop cloud up --provider azure` as the instructor runs it, with
    DefaultAzureCredential finding a managed identity (the fake's App Service endpoint)."""
    cohort = unique_cohort("cli")
    config = cohort_file(arm)
    env = {
        **os.environ,
        "WORKSHOP_STATE_DIR": str(state_root),
        "WORKSHOP_AZURE_ENDPOINT": arm.endpoint,
        "REQUESTS_CA_BUNDLE": str(arm.ca_file),
        "IDENTITY_ENDPOINT": f"{arm.endpoint}/msi/token",
        "IDENTITY_HEADER": arm.identity_header,
    }

    def workshop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(WORKSHOP), "cloud", *args], capture_output=True, text=True, env=env, check=False
        )

    up = workshop(
        "up", "--provider", "azure", "--config", str(config), "--cohort", cohort,
        "--students", "2", "--ssh-timeout", "1", "--json",
    )  # fmt: skip
    assert up.returncode == 1, up.stderr  # the fake's addresses answer no SSH
    report = json.loads(up.stdout)
    assert report["plan"]["total_usd"] == round(2 * 0.526 * 8, 2)
    assert [vm["state"] for vm in report["vms"]] == ["running", "running"]
    assert "no SSH answer: student01, student02" in up.stderr
    inventory = yaml.safe_load((state_root / cohort / "inventory.yml").read_text())
    hosts = inventory["all"]["children"]["student_vms"]["hosts"]
    assert sorted(hosts) == ["student-01", "student-02"]
    assert all(host["ansible_host"].startswith("198.18.") for host in hosts.values())
    status = workshop("status", "--cohort", cohort, "--json")
    assert [vm["student"] for vm in json.loads(status.stdout)] == ["student01", "student02"]
    down = workshop("down", "--cohort", cohort)
    assert down.returncode == 0, down.stderr
    assert "2 instances" in down.stdout
    assert f"resource-group workshop-{cohort}" in down.stdout
    assert tagged(arm, cohort) == {}


def test_a_quota_refusal_at_creation_is_reported_and_no_other_zone_is_tried(arm):
    """The quota filled between the plan and the PUT (another team's VMs)."""
    cohort = unique_cohort("race")
    cloud = cloud_for(arm)
    plan = cloud.plan(2, cohort)
    arm.limits[LOCATION][FAMILY] = float(arm.usage(LOCATION).get(FAMILY, 0))
    calls = len(arm.calls)
    report = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers, plan=plan)
    assert set(report.failed) == {"student01", "student02"}
    assert f"exceeding approved {FAMILY} Cores quota" in report.failed["student01"]
    vm_puts = [c for c in arm.calls[calls:] if c.startswith("PUT") and "virtualMachines" in c]
    assert len(vm_puts) == 2, "one try per student: another zone has the same quota"


def test_the_fake_refuses_bad_tokens_names_and_api_versions(arm):
    graph = ComputeManagementClient(
        EntraToken(),
        SUBSCRIPTION,
        base_url=arm.endpoint,
        credential_scopes=["https://graph.microsoft.com/.default"],
        connection_verify=str(arm.ca_file),
    )
    with pytest.raises(HttpResponseError, match="InvalidAuthenticationTokenAudience"):
        list(graph.usage.list(LOCATION))
    cloud = cloud_for(arm)
    with pytest.raises(HttpResponseError, match="MissingApiVersionParameter"):
        list(cloud.compute.usage.list(LOCATION, api_version=""))
    cohort = unique_cohort("names")
    cloud.up(cohort, ["student01"], ssh_probe=answers)
    group = f"workshop-{cohort}"
    body = json.loads(json.dumps(arm.of_type("virtualMachines", group)[0]))
    body.update(zones=["1"])
    with pytest.raises(HttpResponseError, match="InvalidParameter"):
        cloud.compute.virtual_machines.begin_create_or_update(group, "-bad-", body)
    with pytest.raises(HttpResponseError, match="InvalidResourceName"):
        cloud.network.public_ip_addresses.begin_create_or_update(
            group, "bad name!", {"location": LOCATION, "sku": {"name": "Standard"}}
        )


def _vm_by_hand(cloud, arm, group: str, name: str, subnet: str) -> None:
    """An untagged VM someone made in the group with the portal, on ``subnet``."""
    nic = cloud.network.network_interfaces.begin_create_or_update(
        group,
        f"{name}-hand-nic",
        {
            "location": LOCATION,
            "properties": {
                "ipConfigurations": [{"name": "c", "properties": {"subnet": {"id": subnet}}}]
            },
        },
    ).result()
    template = arm.of_type("virtualMachines", group)[0]["properties"]
    cloud.compute.virtual_machines.begin_create_or_update(
        group,
        name,
        {
            "location": LOCATION,
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_D4s_v5"},
                "osProfile": {**template["osProfile"], "computerName": name},
                "storageProfile": {
                    "imageReference": template["storageProfile"]["imageReference"],
                    "osDisk": {"createOption": "FromImage", "name": f"{name}-hand-osdisk"},
                },
                "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
            },
        },
    ).result()


def test_a_same_named_vm_the_kit_did_not_make_is_left_alone(arm):
    shared = unique_cohort("sharedname")
    cloud = cloud_for(arm, resource_group=shared)
    cohort = unique_cohort("taken")
    cloud.up(cohort, ["student01"], ssh_probe=answers)
    subnet = (
        cloud.network.virtual_networks.get(shared, f"workshop-{cohort}-vnet")
        .properties.subnets[0]
        .id
    )
    _vm_by_hand(cloud, arm, shared, f"{cohort}-student02", subnet)
    before = json.dumps(next(vm for vm in arm.of_type("virtualMachines", shared) if not vm["tags"]))
    report = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert report.failed == {
        "student02": f"name {cohort}-student02 taken by a VM the kit did not make "
        "(no workshop-cohort tag)"
    }
    after = next(vm for vm in arm.of_type("virtualMachines", shared) if not vm["tags"])
    assert json.dumps(after) == before, "the other VM was not changed"
    assert f"publicIPAddresses {cohort}-student02-ip" not in in_group(arm, shared)


def test_a_forbidden_call_names_azures_own_reason(arm):
    arm.forbidden.append(
        (
            "PUT",
            r"/resourcegroups/[^/]+$",
            "RequestDisallowedByPolicy",
            "Resource 'workshop-x' was disallowed by policy. Policy identifiers: "
            '\'[{"policyAssignment":{"name":"Allowed locations"}}]\'.',
        )
    )
    cohort = unique_cohort("policy")
    with pytest.raises(WorkshopError) as refused:
        cloud_for(arm).up(cohort, ["student01"], ssh_probe=answers)
    message = str(refused.value)
    assert f"permission denied to create resource group workshop-{cohort}" in message
    assert "RequestDisallowedByPolicy: Resource 'workshop-x' was disallowed by policy" in message
    arm.forbidden[:] = [
        (
            "GET",
            r"/usages$",
            "AuthorizationFailed",
            "The client 'x' does not have authorization to perform action "
            "'Microsoft.Compute/locations/usages/read'.",
        )
    ]
    with pytest.raises(WorkshopError, match=r"AuthorizationFailed: .*usages/read.*Contributor"):
        cloud_for(arm).plan(1)
    with pytest.raises(WorkshopError, match=r"no usable credentials .*\(.*token.*\): run `az"):
        cloud_for(arm, credential=EntraToken("expired")).plan(1)


def test_down_takes_only_its_own_students_leftover_disks_beside_a_longer_cohort(arm):
    """Cohorts ``nov`` and ``nov-b`` in one group: ``nov``'s down leaves ``nov-b``'s disks."""
    shared = unique_cohort("disks")
    cloud = cloud_for(arm, resource_group=shared)
    nov = unique_cohort("nov")
    nov_b = f"{nov}-b"
    cloud.up(nov, ["student01"], ssh_probe=answers)
    cloud.up(nov_b, ["student01"], ssh_probe=answers)
    for vm in arm.of_type("virtualMachines", shared):  # both keep their disks
        vm["properties"]["storageProfile"]["osDisk"]["deleteOption"] = "Detach"
    # nov-b's VM removed by hand: its disk is left, unattached, untagged.
    cloud.compute.virtual_machines.begin_delete(shared, f"{nov_b}-student01").result()
    report = cloud.down(nov)
    assert report.left == []
    assert report.volumes == [f"{nov}-student01-osdisk"]
    assert f"disks {nov_b}-student01-osdisk" in in_group(arm, shared)


def test_the_plan_names_a_reserved_admin_name_before_anything_is_made(arm):
    cloud = cloud_for(arm, admin_user="admin")
    plan = cloud.plan(1)
    assert not plan.fits
    assert any("admin_user 'admin' is a name Azure does not allow" in p for p in plan.problems)
    calls = len(arm.calls)
    with pytest.raises(WorkshopError, match="admin_user 'admin'"):
        cloud.up(unique_cohort("admin"), ["student01"], ssh_probe=answers)
    assert not any(call.startswith(("PUT", "DELETE")) for call in arm.calls[calls:])


def test_the_plan_names_a_size_that_cannot_boot_the_gen2_image(arm):
    arm.generations[T4] = "V1"
    plan = cloud_for(arm).plan(1)
    assert not plan.fits
    assert plan.offered[T4] == []
    assert plan.instance_type == BIGGER
    assert any(f"size {T4} boots only Hyper-V generation V1" in p for p in plan.problems)


def test_a_family_quota_named_in_another_case_by_the_usages_is_found(arm):
    """The SKU says StandardNCADSA100v4Family, the usages standardNCADSA100v4Family."""
    a100, family = "Standard_NC24ads_A100_v4", "StandardNCADSA100v4Family"
    arm.limits[LOCATION][family] = PLENTY
    plan = cloud_for(arm, instance_types=[a100], prices={}).plan(1)
    assert plan.fits, plan.problems
    assert (plan.quota_code, plan.quota_vcpus) == (family, PLENTY)
    assert plan.quota_name == "Standard NCADS_A100_v4 Family vCPUs"


def test_a_custom_image_id_is_looked_up_in_the_plan(arm):
    images = unique_cohort("images")
    cloud_for(arm).resources.resource_groups.create_or_update(images, {"location": LOCATION})
    version = arm.add_gallery_version(images, "kit", "gpu-base", "1.0.0")
    prefix = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{images}/providers/Microsoft.Compute"
    good = cloud_for(arm, image=version).plan(1)
    assert good.fits, good.problems
    assert good.image == version
    for missing in (
        f"{prefix}/galleries/kit/images/gpu-base/versions/9.9.9",
        f"{prefix}/images/nosuch",
    ):
        plan = cloud_for(arm, image=missing).plan(1)
        assert not plan.fits
        assert any(f"image {missing} does not exist" in p for p in plan.problems), plan.problems


def test_the_fake_refuses_mixed_address_families_in_one_rule_as_arm_does(arm):
    """What the plan spares the class (test_contract.py): ARM's own refusal."""
    cohort = unique_cohort("mixed")
    cloud = cloud_for(arm, allow_from=["203.0.113.0/24", "2001:db8::/32"])
    cloud._resource_group(cohort)
    with pytest.raises(WorkshopError, match="DifferentAddressFamilies"):
        cloud._security_group(cohort)


# The first releases with the hybrid models cloudvms/azure.py is written for (a dict
# accepted as a model, ``.properties.<field>`` on what the SDK returns): compute 38.0.0
# and network 31.0.0, as their changelogs say. Older ones install from a plain
# `pip install .` and crash `up` on the first attribute.
HYBRID_MODELS = {"azure-mgmt-compute": "38.0.0", "azure-mgmt-network": "31.0.0"}


def test_the_sdk_floors_are_the_releases_whose_models_the_code_uses():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    for package, first in HYBRID_MODELS.items():
        floor = requirements[package].specifier
        major = int(first.split(".")[0])
        assert not floor.contains(f"{major - 1}.99.0"), f"{package} {floor} admits pre-{first}"
        assert floor.contains(version(package)), f"the installed {package} is below {floor}"
    # What the code reads is what these releases give: models from dicts, read through
    # .properties (the installed SDK is at or above the floor).
    machine = VirtualMachine(
        {"location": LOCATION, "properties": {"hardwareProfile": {"vmSize": T4}}}
    )
    assert machine.properties.hardware_profile.vm_size == T4
    rule = {"name": "ssh", "properties": {"priority": 100, "destinationPortRange": "22"}}
    group = NetworkSecurityGroup({"location": LOCATION, "properties": {"securityRules": [rule]}})
    assert group.properties.security_rules[0].properties.destination_port_range == "22"


def test_without_credentials_the_cli_says_one_line_not_the_sdks_log(arm, tmp_path, state_root):
    """DefaultAzureCredential logs every credential it tried (about 30 lines, twice):
    kept off the terminal, unless --verbose asks for it."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AZURE_", "IDENTITY_", "MSI_"))
    }
    env.update(
        WORKSHOP_STATE_DIR=str(state_root),
        WORKSHOP_AZURE_ENDPOINT=arm.endpoint,
        REQUESTS_CA_BUNDLE=str(arm.ca_file),
        AZURE_CONFIG_DIR=str(tmp_path),
        PATH=f"{WORKSHOP.parent}:/usr/bin:/bin",  # no az, azd or pwsh to fall back on
    )
    config = str(cohort_file(arm))

    def up(*first: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(WORKSHOP), *first, "cloud", "up", "--provider", "azure", "--config", config,
             "--cohort", unique_cohort("cred"), "--dry-run"],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip

    quiet = up()
    assert quiet.returncode == 2, quiet.stderr
    lines = quiet.stderr.strip().splitlines()
    assert len(lines) == 1, quiet.stderr
    assert lines[0].startswith("error: azure: no usable credentials"), quiet.stderr
    loud = up("--verbose")
    assert loud.returncode == 2
    assert "DefaultAzureCredential" in loud.stderr
    assert len(loud.stderr.strip().splitlines()) > 1
