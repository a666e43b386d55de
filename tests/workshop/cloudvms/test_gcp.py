"""A cohort's VMs in Google Compute Engine, against a local server speaking Compute
Engine's REST API (tests/fakes/gce.py), reached by the real google-cloud-compute client
with a service-account key from the standard chain (GOOGLE_APPLICATION_CREDENTIALS) and
the endpoint from WORKSHOP_GCP_ENDPOINT. The fake can fill a zone, lower a quota and
throttle. SSH: its addresses have no machine behind them, so the probe is given."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.api_core.exceptions as gexc
import google.auth.compute_engine._metadata
import google.oauth2.credentials
import pytest
import yaml
from google.cloud import compute_v1

from tests.conftest import WORKSHOP, unique_cohort
from tests.fakes.gce import PROJECT, REGION, GceServer
from tests.workshop.cloudvms.values import GCP_PLENTY, KEY
from workshop.cloudvms import gcp, spec
from workshop.errors import WorkshopError

ZONES = ["us-central1-a", "us-central1-b", "us-central1-c"]
PLENTY = GCP_PLENTY


@pytest.fixture(scope="module")
def clouds(gcp_clouds):
    return gcp_clouds


@pytest.fixture
def fake(clouds) -> Iterator[GceServer]:
    yield clouds["fake"]
    clouds["fake"].limits.update(PLENTY)
    clouds["fake"].gpus_all_regions = 1024.0
    clouds["fake"].cpus_all_regions = 65536.0
    clouds["fake"].default_network = True
    clouds["fake"].full.clear()
    clouds["fake"].full_at_insert.clear()
    clouds["fake"].throttle = 0
    clouds["fake"].throttle_status = 429
    clouds["fake"].lose_answers = 0


def cohort_file(clouds, **overrides: Any) -> Path:
    content = {
        "provider": "gcp",
        "region": REGION,
        "zones": ZONES[:2],
        "instance_types": ["n1-standard-4", "n1-standard-8"],
        "gpu_type": "nvidia-tesla-t4",
        "image": "ubuntu-24.04",
        "disk_gb": 120,
        "ssh_public_key": str(clouds["dir"] / "admin.pub"),
        "allow_from": ["203.0.113.0/24"],
        "lab_ports": [8000, 8080],
        "hours": 8,
        "expires_at": "2026-12-01T18:00:00Z",
        "prices": {"n1-standard-4": 0.54, "n1-standard-8": 0.73},
        **overrides,
    }
    path = clouds["dir"] / f"cohort-{unique_cohort('f')}.yml"
    path.write_text(yaml.safe_dump(content))
    return path


def cloud_for(clouds, **overrides: Any) -> gcp.GcpCloud:
    return gcp.GcpCloud(spec.load(cohort_file(clouds, **overrides)))


def labelled(fake: GceServer, cohort: str) -> dict[str, list[str]]:
    """The cohort's instances and disks (by label) and firewall rules (by name)."""
    with fake.lock:
        return {
            "instances": sorted(
                f"{zone}/{name}"
                for (zone, name), i in fake.instances.items()
                if i["labels"].get("workshop-cohort") == cohort
            ),
            "disks": sorted(
                name
                for (_, name), d in fake.disks.items()
                if d["labels"].get("workshop-cohort") == cohort
            ),
            "firewalls": sorted(name for name in fake.firewalls if cohort in name),
        }


NOTHING: dict[str, list[str]] = {"instances": [], "disks": [], "firewalls": []}


def everything(fake: GceServer) -> dict[str, set[Any]]:
    with fake.lock:
        return {
            "instances": set(fake.instances),
            "disks": set(fake.disks),
            "firewalls": set(fake.firewalls),
        }


def answers(_ip: str, _timeout: float) -> bool:
    return True


def test_the_plan_says_what_the_cohort_needs_has_and_costs(clouds, fake):
    plan = cloud_for(clouds, zones=ZONES).plan(3)
    assert plan.fits, plan.problems
    assert (plan.instance_type, plan.vcpus_per_vm, plan.gpus_per_vm) == ("n1-standard-4", 4, 1)
    assert (plan.quota_code, plan.quota_vcpus, plan.needed_vcpus) == ("CPUS", 4096.0, 12)
    assert plan.offered["n1-standard-4"] == ZONES
    assert plan.image.endswith(
        "/projects/ubuntu-os-cloud/global/images/ubuntu-2404-noble-amd64-v20261120"
    )
    assert plan.total_usd == round(3 * 0.54 * 8, 2)
    # A type with its GPU built in: only where the zone offers that GPU (no L4 in -c).
    built_in = cloud_for(
        clouds, zones=ZONES, instance_types=["g2-standard-4"], gpu_type=None, image="ubuntu-22.04"
    ).plan(2)
    assert built_in.fits, built_in.problems
    assert built_in.offered["g2-standard-4"] == ZONES[:2]
    assert (built_in.gpus_per_vm, built_in.quota_code) == (1, "G2_CPUS")
    assert "ubuntu-2204" in built_in.image


def test_a_cohort_over_the_quota_is_refused_with_the_numbers_and_nothing_is_made(clouds, fake):
    cohort = unique_cohort("quota")
    cloud = cloud_for(clouds)
    used = cloud.plan(1).used_vcpus  # what other tests left running in the region
    fake.limits["CPUS"] = used + 8.0
    before = everything(fake)
    with pytest.raises(WorkshopError) as refused:
        cloud.up(cohort, ["student01", "student02", "student03"], ssh_probe=answers)
    message = str(refused.value)
    assert "needs 12 vCPUs of the quota CPUS in us-central1" in message
    assert f"8 are free ({used + 8} in the quota, {used} in use)" in message
    assert f"request at least {used + 12}" in message
    assert "gcloud compute regions describe us-central1" in message
    assert everything(fake) == before


def test_a_new_projects_zero_gpu_quotas_are_named(clouds, fake):
    fake.limits["NVIDIA_T4_GPUS"] = 0.0
    fake.gpus_all_regions = 0.0
    plan = cloud_for(clouds).plan(2)
    assert not plan.fits
    regional, global_ = plan.problems
    assert "needs 2 GPUs of the quota NVIDIA_T4_GPUS in us-central1" in regional
    assert "needs 2 GPUs of the quota GPUS_ALL_REGIONS of the project" in global_
    used = int(fake.gpus_in_use())
    assert f"0 are free (0 in the quota, {used} in use)" in global_
    for problem in plan.problems:
        assert "new projects start at 0 GPUs" in problem
    fake.limits["NVIDIA_T4_GPUS"] = 1024.0  # the region's raised, the project's still 0
    before = everything(fake)
    with pytest.raises(WorkshopError, match="GPUS_ALL_REGIONS"):
        cloud_for(clouds).up(unique_cohort("gpu"), ["student01"], ssh_probe=answers)
    assert everything(fake) == before


def test_a_second_up_counts_the_cohorts_own_vms_once(clouds, fake):
    cohort = unique_cohort("twice")
    cloud = cloud_for(clouds)
    used = cloud.plan(1).used_vcpus
    fake.limits["CPUS"] = used + 8.0  # room for exactly two
    cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    again = cloud.plan(2, cohort)
    more = cloud.plan(3, cohort)
    assert again.fits, again.problems
    assert again.needed_vcpus == 0
    assert not more.fits, "a third student does not fit"


def test_an_unknown_zone_a_zone_of_another_region_and_a_missing_image_are_named(clouds, fake):
    missing = "projects/ubuntu-os-cloud/global/images/ubuntu-1804-bionic-v2020"
    plan = cloud_for(clouds, zones=["us-central1-a", "us-central1-z"], image=missing).plan(2)
    assert not plan.fits
    assert plan.offered["n1-standard-4"] == ["us-central1-a"]
    assert any("ubuntu-1804-bionic-v2020 does not exist" in p for p in plan.problems)
    assert any("zone us-central1-z does not exist" in p for p in plan.problems)
    nowhere = cloud_for(clouds, zones=["us-central1-z", "europe-west1-b"]).plan(1)
    assert any(
        "none of n1-standard-4, n1-standard-8 with nvidia-tesla-t4" in p for p in nowhere.problems
    )
    assert any("europe-west1-b is not in region us-central1" in p for p in nowhere.problems)
    mixed = cloud_for(clouds, allow_from=["203.0.113.0/24", "2001:db8::/32"]).plan(1)
    assert any("mixes IPv4 and IPv6" in p for p in mixed.problems)


def test_up_labels_each_vm_with_its_gpu_disk_key_and_rule(clouds, fake):
    """(A second up making none: test_contract.py.)"""
    cohort = unique_cohort("up")
    cloud = cloud_for(clouds)
    students = ["student01", "student02", "student03"]
    first = cloud.up(cohort, students, ssh_probe=answers)
    assert first.ready, first.failed
    assert sorted(first.created) == students
    assert first.security_group == f"workshop-{cohort}-ssh"
    made = labelled(fake, cohort)
    assert made["instances"] == [f"us-central1-a/{cohort}-{s}" for s in students]
    assert len(made["disks"]) == 3
    for vm in first.vms:
        assert vm.state == "RUNNING"
        assert vm.public_ip
        assert vm.public_ip.startswith("198.18.")
        instance = fake.instances[("us-central1-a", f"{cohort}-{vm.student}")]
        assert instance["labels"] == {
            "workshop-cohort": cohort,
            "workshop-student": vm.student,
            "workshop-expires": "2026-12-01t18-00-00z",
        }
        assert instance["metadata"]["items"] == [
            {"key": "ssh-keys", "value": f"ubuntu:{KEY.strip()}"},
            {"key": "enable-oslogin", "value": "FALSE"},  # else OS Login ignores ssh-keys
        ]
        assert instance["tags"]["items"] == [f"workshop-{cohort}"]
        assert instance["scheduling"]["onHostMaintenance"] == "TERMINATE"
        [gpu] = instance["guestAccelerators"]
        assert gpu["acceleratorType"].endswith("/acceleratorTypes/nvidia-tesla-t4")
        assert instance["disks"][0]["diskSizeGb"] == "120"
        disk = fake.disks[("us-central1-a", f"{cohort}-{vm.student}")]
        assert disk["type"].endswith("/zones/us-central1-a/diskTypes/pd-balanced")
    rule = fake.firewalls[f"workshop-{cohort}-ssh"]
    assert rule["sourceRanges"] == ["203.0.113.0/24"]
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["22", "8000", "8080"]}]
    assert rule["targetTags"] == [f"workshop-{cohort}"]


def test_a_firewall_rule_changed_by_hand_is_mended_by_the_next_up(clouds, fake):
    """(A VM removed by hand: test_contract.py.)"""
    cohort = unique_cohort("again")
    cloud = cloud_for(clouds)
    cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    with fake.lock:
        fake.firewalls[f"workshop-{cohort}-ssh"]["sourceRanges"] = ["0.0.0.0/0"]
    cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert fake.firewalls[f"workshop-{cohort}-ssh"]["sourceRanges"] == ["203.0.113.0/24"]


def test_a_full_zone_moves_on_to_the_next_zone_then_type_and_a_full_region_is_named(clouds, fake):
    cloud = cloud_for(clouds)
    fake.full = {("us-central1-a", None)}
    moved = cloud.up(unique_cohort("zone"), ["student01"], ssh_probe=answers)
    assert [(vm.zone, vm.instance_type) for vm in moved.vms] == [("us-central1-b", "n1-standard-4")]
    fake.full = {("us-central1-a", "n1-standard-4"), ("us-central1-b", "n1-standard-4")}
    other = cloud.up(unique_cohort("type"), ["student01"], ssh_probe=answers)
    assert [(vm.zone, vm.instance_type) for vm in other.vms] == [("us-central1-a", "n1-standard-8")]
    fake.full = {("us-central1-a", None), ("us-central1-b", None)}
    cohort = unique_cohort("full")
    before = everything(fake)
    full = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    after = everything(fake)
    assert {kind: after[kind] - before[kind] for kind in after} == {
        "instances": set(),
        "disks": set(),
        "firewalls": {f"workshop-{cohort}-ssh"},
    }, "the failed run made nothing but the cohort's rule"
    assert not full.ready
    assert set(full.failed) == {"student01", "student02"}
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in full.failed["student01"]
    assert "n1-standard-8 in us-central1-b" in full.failed["student01"]
    fake.full.clear()
    completed = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert sorted(completed.created) == ["student01", "student02"]


def test_a_quota_refusal_at_creation_stops_without_trying_other_zones(clouds, fake):
    cohort = unique_cohort("late")
    cloud = cloud_for(clouds)
    plan = cloud.plan(1, cohort)  # it fitted a moment ago; then someone else took the GPUs
    fake.limits["NVIDIA_T4_GPUS"] = 0.0
    inserts = len(fake.inserts)
    report = cloud.up(cohort, ["student01"], ssh_probe=answers, plan=plan)
    assert report.failed["student01"].startswith("QUOTA_EXCEEDED: Quota 'NVIDIA_T4_GPUS' exceeded")
    assert len(fake.inserts) == inserts + 1
    assert labelled(fake, cohort)["instances"] == []


def test_throttled_calls_are_backed_off_and_retried(clouds, fake, monkeypatch):
    """Compute Engine throttles mostly with 403 rateLimitExceeded (domain usageLimits)."""
    cohort = unique_cohort("slow")
    monkeypatch.setattr(gcp, "BACKOFF", 0.05)  # 0.05, 0.1, 0.2 s instead of 0.5, 1, 2
    fake.throttle, fake.throttle_status = 3, 403
    throttled = fake.throttled
    report = cloud_for(clouds).up(cohort, ["student01"], ssh_probe=answers)
    assert fake.throttled == throttled + 3
    assert report.ready, report.failed
    assert len(labelled(fake, cohort)["instances"]) == 1


@pytest.mark.parametrize("status", [429, 500])
def test_a_429_and_a_passing_500_are_tried_again(clouds, fake, monkeypatch, status):
    """(The client tries a GET answered 503 again itself; an insert's 503: the next test.)"""
    monkeypatch.setattr(gcp, "BACKOFF", 0.01)
    fake.throttle, fake.throttle_status = 3, status
    throttled = fake.throttled
    plan = cloud_for(clouds).plan(1)
    assert fake.throttled == throttled + 3
    assert plan.fits, plan.problems


def test_an_insert_whose_answer_was_lost_counts_and_a_name_taken_by_another_vm_fails(
    clouds, fake, monkeypatch
):
    """An insert answered 503 backendError (which the client does not try again) is tried
    again by the kit; if it had happened, the 409 finds the cohort's own VM."""
    monkeypatch.setattr(gcp, "BACKOFF", 0.01)
    cloud = cloud_for(clouds)
    cohort = unique_cohort("lost")
    fake.lose_answers = 1  # made, answered 503; tried again: 409 alreadyExists
    report = cloud.up(cohort, ["student01"], ssh_probe=answers)
    assert (report.created, report.failed) == (["student01"], {})
    assert report.ready
    taken = unique_cohort("taken")
    image = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"
    with fake.lock:  # someone's own VM with the name the kit would give student01
        fake.insert_instance(
            "us-central1-a",
            {
                "name": f"{taken}-student01",
                "machineType": "zones/us-central1-a/machineTypes/n1-standard-4",
                "disks": [{"boot": True, "initializeParams": {"sourceImage": image}}],
            },
        )
    other = cloud.up(taken, ["student01", "student02"], ssh_probe=answers)
    assert other.created == ["student02"]
    assert set(other.failed) == {"student01"}
    assert (
        f"name {taken}-student01 taken by a VM the kit did not make (no workshop-cohort label"
        in other.failed["student01"]
    )
    assert "delete or rename it" in other.failed["student01"]
    assert not other.ready
    with fake.lock:
        fake.delete_instance("us-central1-a", f"{taken}-student01")


def test_the_boot_disk_is_pd_balanced_or_hyperdisk_which_c3_and_n4_accept(clouds, fake):
    """No disk type is pd-standard (HDD), which G2, C3, N4 and C4 refuse."""
    for kind, disk_type in (("c3-standard-4", "pd-balanced"), ("n4-standard-4", "hyperdisk")):
        cohort = unique_cohort("disk")
        cloud = cloud_for(clouds, instance_types=[kind], gpu_type=None)
        report = cloud.up(cohort, ["student01"], ssh_probe=answers)
        assert report.ready, report.failed
        assert report.plan.quota_code == kind.split("-")[0].upper() + "_CPUS"
        disk = fake.disks[("us-central1-a", f"{cohort}-student01")]
        assert f"/diskTypes/{disk_type}" in disk["type"]
        cloud.down(cohort)


def test_the_plan_names_every_quota_that_would_stop_the_class(clouds, fake):
    """vCPUs of the project (CPUS_ALL_REGIONS), the region's external addresses
    (IN_USE_ADDRESSES) and SSD disk space (SSD_TOTAL_GB: pd-balanced boot disks)."""
    cloud = cloud_for(clouds)  # disk_gb 120, n1-standard-4
    used = fake.usage()
    addresses, ssd, cpus = (
        int(used["IN_USE_ADDRESSES"]),
        int(used["SSD_TOTAL_GB"]),
        int(fake.cpus_in_use()),
    )
    fake.limits["IN_USE_ADDRESSES"] = addresses + 2.0
    fake.limits["SSD_TOTAL_GB"] = ssd + 250.0
    fake.cpus_all_regions = cpus + 8.0
    plan = cloud.plan(3)
    assert not plan.fits
    problems = "\n".join(plan.problems)
    assert len(plan.problems) == 3, problems
    assert (
        f"needs 12 vCPUs of the quota CPUS_ALL_REGIONS of the project; 8 are free "
        f"({cpus + 8} in the quota, {cpus} in use): request at least {cpus + 12}" in problems
    )
    assert (
        f"3 VMs (one external IP each) needs 3 addresses of the quota IN_USE_ADDRESSES in "
        f"us-central1; 2 are free ({addresses + 2} in the quota, {addresses} in use): request "
        f"at least {addresses + 3}" in problems
    )
    assert (
        f"3 x 120 GB pd-balanced boot disks needs 360 GB of the quota SSD_TOTAL_GB in "
        f"us-central1; 250 are free ({ssd + 250} in the quota, {ssd} in use): request at "
        f"least {ssd + 360}" in problems
    )
    assert "compute.googleapis.com/in_use_addresses" in problems
    before = everything(fake)
    with pytest.raises(WorkshopError, match="IN_USE_ADDRESSES"):
        cloud.up(unique_cohort("quotas"), ["s1", "s2", "s3"], ssh_probe=answers)
    assert everything(fake) == before
    # Each insert is charged: a plan that fitted a moment ago meets the API's refusal.
    fake.limits["IN_USE_ADDRESSES"] = addresses + 1.0
    fake.limits["SSD_TOTAL_GB"] = ssd + 120.0
    fake.cpus_all_regions = cpus + 4.0
    for metric in ("IN_USE_ADDRESSES", "SSD_TOTAL_GB", "CPUS_ALL_REGIONS"):
        cohort = unique_cohort("charged")
        plan = cloud.plan(1, cohort)
        assert plan.fits, plan.problems
        saved = (dict(fake.limits), fake.cpus_all_regions)
        if metric == "CPUS_ALL_REGIONS":
            fake.cpus_all_regions = float(cpus)
        else:
            fake.limits[metric] -= 1.0
        report = cloud.up(cohort, ["student01"], ssh_probe=answers, plan=plan)
        assert report.failed["student01"].startswith(f"QUOTA_EXCEEDED: Quota '{metric}'")
        fake.limits.update(saved[0])
        fake.cpus_all_regions = saved[1]
    assert everything(fake) == before | {
        "firewalls": before["firewalls"] | {n for n in fake.firewalls if "charged" in n}
    }


def test_a_project_without_the_default_network_is_named_before_anything_is_made(clouds, fake):
    fake.default_network = False
    before = everything(fake)
    cloud = cloud_for(clouds)
    plan = cloud.plan(1)
    [problem] = plan.problems
    assert f"project {PROJECT} has no network named default" in problem
    assert "gcloud compute networks create default --subnet-mode=auto" in problem
    with pytest.raises(WorkshopError, match="no network named default"):
        cloud.up(unique_cohort("nonet"), ["student01"], ssh_probe=answers)
    assert everything(fake) == before


def test_a_gpu_on_a_type_that_takes_none_and_a_gpu_without_a_quota_are_named(clouds, fake):
    e2 = cloud_for(clouds, instance_types=["e2-standard-4", "n1-standard-4"]).plan(1)
    [problem] = e2.problems
    assert "gpu_type nvidia-tesla-t4 cannot be attached to e2-standard-4" in problem
    assert "GPUs attach only to N1 types" in problem
    assert e2.offered["e2-standard-4"] == []
    assert cloud_for(clouds, instance_types=["e2-standard-4"], gpu_type=None).plan(1).fits
    p4 = cloud_for(clouds, gpu_type="nvidia-tesla-p4").plan(1)
    [unknown] = [p for p in p4.problems if "NVIDIA_P4_GPUS" in p]
    assert "unknown quota metric NVIDIA_P4_GPUS for GPU nvidia-tesla-p4" in unknown
    e2_cpus = cloud_for(clouds, instance_types=["e2-standard-4"], gpu_type=None).plan(1)
    assert e2_cpus.quota_code == "CPUS"


def test_a_students_second_vm_from_two_ups_at_once_is_removed(clouds, fake):
    cohort = unique_cohort("dup")
    cloud = cloud_for(clouds)
    first = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    keep = next(vm for vm in first.vms if vm.student == "student01")
    with fake.lock:  # what a second `up` running at once made in the next zone
        body = json.loads(
            compute_v1.Instance.to_json(
                cloud._body(cohort, "student01", "n1-standard-4", "us-central1-b", first.plan.image)
            )
        )
        fake.insert_instance("us-central1-b", body)
    again = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    kept = [vm for vm in again.vms if vm.student == "student01"]
    assert [(vm.instance_id, vm.zone) for vm in kept] == [(keep.instance_id, keep.zone)]
    assert again.duplicates_removed == [f"{cohort}-student01 in us-central1-b"]
    assert len(again.vms) == 2


def test_a_stopped_vm_is_named_not_waited_for(clouds, fake):
    cohort = unique_cohort("stopped")
    cloud = cloud_for(clouds)
    cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    with fake.lock:
        fake.instances[("us-central1-a", f"{cohort}-student02")]["status"] = "TERMINATED"
    again = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert again.seconds < 10, "the stopped VM was waited for"
    assert not again.ready
    assert {vm.student: (vm.state, vm.ssh_ok) for vm in again.vms} == {
        "student01": ("RUNNING", True),
        "student02": ("TERMINATED", False),
    }


def test_a_vm_that_never_answers_ssh_is_named(clouds, fake):
    silent: set[str] = set()

    def probe(ip: str, _timeout: float) -> bool:
        if not silent:
            silent.add(ip)
        return ip not in silent

    report = cloud_for(clouds).up(unique_cohort("ssh"), ["student01", "student02"], ssh_probe=probe)
    assert not report.ready
    [quiet] = silent
    assert {vm.public_ip: vm.ssh_ok for vm in report.vms} == {
        vm.public_ip: vm.public_ip != quiet for vm in report.vms
    }
    [named] = [vm for vm in report.vms if not vm.ssh_ok]
    assert named.public_ip == quiet
    assert named.student in ("student01", "student02")
    assert named.instance_id == f"{report.cohort}-{named.student}"


def test_down_removes_exactly_the_cohort_and_a_leftover_disk_and_is_safe_to_repeat(clouds, fake):
    cloud = cloud_for(clouds)
    kept, removed = unique_cohort("kept"), unique_cohort("gone")
    cloud.up(kept, ["student01"], ssh_probe=answers)
    cloud.up(removed, ["student01", "student02"], ssh_probe=answers)
    image = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"
    with fake.lock:  # someone's own VM, unlabelled, and a disk a VM without auto-delete left
        fake.insert_instance(
            "us-central1-a",
            {
                "name": f"{removed}-mine",
                "machineType": "zones/us-central1-a/machineTypes/n1-standard-4",
                "disks": [{"boot": True, "initializeParams": {"sourceImage": image}}],
            },
        )
        fake.disks[("us-central1-b", f"{removed}-data")] = {
            **fake.disks[next(k for k in fake.disks if k[1] == f"{removed}-student01")],
            "name": f"{removed}-data",
            "zone": fake.link("zones/us-central1-b"),
            "users": [],
        }
    before = labelled(fake, kept)
    report = cloud.down(removed)
    assert sorted(report.terminated) == [f"{removed}-student01", f"{removed}-student02"]
    assert report.other == [f"firewall workshop-{removed}-ssh"]
    assert report.volumes == [f"{removed}-data"]
    assert report.left == []
    assert labelled(fake, removed) == NOTHING
    assert labelled(fake, kept) == before
    assert ("us-central1-a", f"{removed}-mine") in fake.instances, "an unlabelled VM stays"
    again = cloud.down(removed)
    assert (again.terminated, again.other, again.volumes, again.left) == ([], [], [], [])


@pytest.mark.parametrize("cohort", ["Nov_2026", "x" * 60, "2026-nov"])
def test_a_cohort_name_compute_engine_refuses_is_refused_before_anything_is_made(
    clouds, fake, cohort
):
    before, inserts = everything(fake), len(fake.inserts)
    with pytest.raises(WorkshopError) as refused:
        cloud_for(clouds).up(cohort, ["student01"], ssh_probe=answers)
    assert f"cohort {cohort!r}" in str(refused.value)
    assert everything(fake) == before
    assert len(fake.inserts) == inserts


def test_without_credentials_or_project_or_with_a_bad_token_the_fix_is_named(
    clouds, fake, tmp_path, monkeypatch
):
    config = spec.load(cohort_file(clouds))
    with monkeypatch.context() as bare:
        bare.delenv("GOOGLE_APPLICATION_CREDENTIALS")
        bare.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file
        bare.setattr(google.auth.compute_engine._metadata, "_NO_GCE_CHECK", True)
        with pytest.raises(WorkshopError) as refused:
            gcp.GcpCloud(config)
    assert "gcp: no Google credentials" in str(refused.value)
    assert "gcloud auth application-default login" in str(refused.value)
    stranger = google.oauth2.credentials.Credentials(token="ya29.not-from-google")
    with pytest.raises(WorkshopError) as project:
        gcp.GcpCloud(config, credentials=stranger)
    assert "`project:` in the cohort file" in str(project.value)
    with_project = spec.load(cohort_file(clouds, project=PROJECT))
    with pytest.raises(WorkshopError) as bad:
        gcp.GcpCloud(with_project, credentials=stranger).plan(1)
    assert "Google refused the credentials" in str(bad.value)
    assert "ya29.not-from-google" not in str(bad.value)


def test_the_fake_refuses_what_compute_engine_refuses(clouds, fake):
    """The real client against the fake: GPUs without TERMINATE, bad labels and names, an
    unknown project, a boot disk of no type (pd-standard) on G2, a GPU on E2, a filter it
    cannot parse, no default network, a duplicate."""
    cloud = cloud_for(clouds)
    body = cloud._body(
        "refuse-me", "student01", "n1-standard-4", "us-central1-a", gcp.UBUNTU_PROJECT
    )
    body.disks[
        0
    ].initialize_params.source_image = (
        "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64"
    )
    client = cloud.instances

    def insert(project: str = PROJECT, **changes: Any) -> Any:
        resource = compute_v1.Instance.from_json(compute_v1.Instance.to_json(body))
        for field, value in changes.items():
            setattr(resource, field, value)
        return client.insert(project=project, zone="us-central1-a", instance_resource=resource)

    with pytest.raises(gexc.BadRequest, match="do not support live migration"):
        insert(scheduling=compute_v1.Scheduling(on_host_maintenance="MIGRATE"))
    with pytest.raises(gexc.BadRequest, match=r"resource\.labels"):
        insert(labels={"workshop-cohort": "Nov 2026"})
    with pytest.raises(gexc.BadRequest, match=r"Invalid value for field 'resource\.name'"):
        insert(name="Refuse_me")
    with pytest.raises(gexc.NotFound, match="projects/someone-else"):
        insert(project="someone-else")
    with pytest.raises(gexc.BadRequest, match="Unknown zone"):
        client.get(project=PROJECT, zone="us-central1-z", instance="x")
    g2 = compute_v1.Instance.from_json(compute_v1.Instance.to_json(body))
    g2.machine_type = "zones/us-central1-a/machineTypes/g2-standard-4"
    g2.guest_accelerators = []
    g2.disks[0].initialize_params.disk_type = ""  # none given: pd-standard
    with pytest.raises(gexc.BadRequest, match="pd-standard disk type cannot be used by g2"):
        client.insert(project=PROJECT, zone="us-central1-a", instance_resource=g2)
    with pytest.raises(gexc.BadRequest, match=r"\[e2-standard-4, nvidia-tesla-t4\] features"):
        insert(machine_type="zones/us-central1-a/machineTypes/e2-standard-4")
    for garbage in ("garbage", "labels.workshop-cohort", 'labels.a = "b" OR (', "tags = x"):
        with pytest.raises(gexc.BadRequest, match="Invalid list filter expression"):
            list(client.aggregated_list(request={"project": PROJECT, "filter": garbage}))
    assert gcp.label_filter("nov-2026") == 'labels.workshop-cohort = "nov-2026"'
    fake.default_network = False
    with pytest.raises(gexc.BadRequest, match="network resource cannot be found"):
        insert()
    with pytest.raises(gexc.NotFound, match="global/networks/default"):
        cloud.networks.get(project=PROJECT, network="default")
    fake.default_network = True
    insert()
    with pytest.raises(gexc.Conflict, match="already exists"):
        insert()
    mine = gcp.label_filter("refuse-me")
    found = list(client.aggregated_list(request={"project": PROJECT, "filter": mine}))
    assert [i.name for _, scoped in found for i in scoped.instances] == ["refuse-me-student01"]
    found = list(
        client.aggregated_list(request={"project": PROJECT, "filter": gcp.label_filter("refuse")})
    )
    assert [i.name for _, scoped in found for i in scoped.instances] == []
    with fake.lock:
        fake.delete_instance("us-central1-a", "refuse-me-student01")


def test_the_cli_creates_writes_the_inventory_reports_ssh_and_removes(clouds, state_root):
    """Through `workshop cloud up --provider gcp` as the instructor runs it; the fake's
    addresses answer no SSH, so each VM is named and the exit status is 1."""
    cohort = unique_cohort("cli")
    config = cohort_file(clouds)
    env = {**os.environ, **clouds["env"], "WORKSHOP_STATE_DIR": str(state_root)}

    def workshop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(WORKSHOP), "cloud", *args], capture_output=True, text=True, env=env, check=False
        )

    up = workshop(
        "up", "--provider", "gcp", "--config", str(config), "--cohort", cohort,
        "--students", "2", "--ssh-timeout", "1", "--json",
    )  # fmt: skip
    assert up.returncode == 1, up.stderr
    report = json.loads(up.stdout)
    assert report["plan"]["total_usd"] == round(2 * 0.54 * 8, 2)
    assert report["security_group"] == f"workshop-{cohort}-ssh"
    assert [vm["ssh_ok"] for vm in report["vms"]] == [False, False]
    assert "no SSH answer: student01, student02" in up.stderr
    inventory = yaml.safe_load((state_root / cohort / "inventory.yml").read_text())
    hosts = inventory["all"]["children"]["student_vms"]["hosts"]
    assert sorted(hosts) == ["student-01", "student-02"]
    assert all(host["ansible_host"].startswith("198.18.") for host in hosts.values())
    assert inventory["all"]["vars"]["ansible_ssh_private_key_file"] == str(clouds["dir"] / "admin")
    status = workshop("status", "--cohort", cohort, "--json")
    assert [vm["student"] for vm in json.loads(status.stdout)] == ["student01", "student02"]
    down = workshop("down", "--cohort", cohort)
    assert down.returncode == 0, down.stderr
    assert "2 instances" in down.stdout
    assert f"firewall workshop-{cohort}-ssh" in down.stdout
    assert labelled(clouds["fake"], cohort) == NOTHING


def test_a_stockout_answered_by_the_insert_itself_moves_on_to_the_next_zone(clouds, fake):
    """Compute Engine reports a full zone either in the insert's operation or as the
    insert's own 503 ZONE_RESOURCE_POOL_EXHAUSTED: neither is retried in that zone."""
    fake.full_at_insert.add(("us-central1-a", None))
    report = cloud_for(clouds).up(unique_cohort("stock"), ["student01"], ssh_probe=answers)
    assert report.ready, report.failed
    assert [vm.zone for vm in report.vms] == ["us-central1-b"]
    tried = [zone for zone, _ in fake.inserts[-2:]]
    assert tried == ["us-central1-a", "us-central1-b"], "one try in the full zone, then on"


@pytest.mark.parametrize(
    ("machine_type", "disk"),
    [
        ("a3-ultragpu-8g", "hyperdisk-balanced"),
        ("g4-standard-48", "hyperdisk-balanced"),
        ("a4-highgpu-8g", "hyperdisk-balanced"),
        ("a3-highgpu-8g", "pd-balanced"),
        ("g2-standard-4", "pd-balanced"),
    ],
)
def test_the_newest_gpu_families_boot_from_hyperdisk_only(machine_type, disk):
    """A3 Ultra, A4 and G4 take no Persistent Disk (Compute Engine's disk-type table)."""
    assert gcp.boot_disk_type(machine_type) == disk
