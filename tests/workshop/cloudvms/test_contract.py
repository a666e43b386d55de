"""What every provider must do, checked once against each cloud's fake through its real
SDK: ``up`` makes one VM per student and a second ``up`` makes none; a VM removed by hand
is made again, alone; a VM whose SSH never answers is named, the others are not. (What is
particular to one cloud, its tags, rules and refusals, is in test_<provider>.py.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import unique_cohort
from tests.workshop.cloudvms import test_aws, test_azure, test_gcp
from workshop.cloudvms.base import CloudProvider


@dataclass
class Rig:
    """One cloud's fake, seen the same way for every provider."""

    make: Callable[[], CloudProvider]
    resources: Callable[[str], dict[str, list[str]]]  # the cohort's, by kind
    vms: Callable[[str], list[str]]  # the cohort's VMs in the fake
    creations: Callable[[], int]  # how many VM creations the fake has been asked for
    remove: Callable[[CloudProvider, str, Any], None]  # a VM deleted by hand


def aws_rig(clouds: dict) -> Rig:
    return Rig(
        make=lambda: test_aws.cloud_for(clouds),
        resources=lambda cohort: test_aws.tagged(clouds, cohort),
        vms=lambda cohort: test_aws.tagged(clouds, cohort)["instances"],
        creations=lambda: len(clouds["proxy"].run_calls),
        remove=lambda _cloud, _cohort, vm: clouds["ec2"].terminate_instances(
            InstanceIds=[vm.instance_id]
        ),
    )


def gcp_rig(clouds: dict) -> Rig:
    fake = clouds["fake"]

    def remove(_cloud: CloudProvider, _cohort: str, vm: Any) -> None:
        with fake.lock:
            fake.delete_instance(vm.zone, vm.instance_id)

    return Rig(
        make=lambda: test_gcp.cloud_for(clouds),
        resources=lambda cohort: test_gcp.labelled(fake, cohort),
        vms=lambda cohort: test_gcp.labelled(fake, cohort)["instances"],
        creations=lambda: len(fake.inserts),
        remove=remove,
    )


def azure_rig(arm: Any) -> Rig:
    def remove(cloud: CloudProvider, cohort: str, vm: Any) -> None:
        compute = cloud.compute  # type: ignore[attr-defined]
        compute.virtual_machines.begin_delete(f"workshop-{cohort}", vm.instance_id).result()

    return Rig(
        make=lambda: test_azure.cloud_for(arm),
        resources=lambda cohort: test_azure.tagged(arm, cohort),
        vms=lambda cohort: test_azure.tagged(arm, cohort).get("virtualMachines", []),
        creations=lambda: len(
            [c for c in arm.calls if c.startswith("PUT") and "virtualMachines" in c]
        ),
        remove=remove,
    )


@pytest.fixture(params=["aws", "gcp", "azure"])
def rig(request: pytest.FixtureRequest) -> Rig:
    if request.param == "aws":
        return aws_rig(request.getfixturevalue("aws_clouds"))
    if request.param == "gcp":
        return gcp_rig(request.getfixturevalue("gcp_clouds"))
    return azure_rig(request.getfixturevalue("azure_arm"))


def answers(_ip: str, _timeout: float) -> bool:
    return True


def test_up_makes_one_vm_per_student_and_a_second_up_makes_none(rig):
    cohort = unique_cohort("up")
    cloud = rig.make()
    students = ["student01", "student02", "student03"]
    first = cloud.up(cohort, students, ssh_probe=answers)
    assert first.ready, first.failed
    assert sorted(first.created) == students
    assert sorted(vm.student for vm in first.vms) == students
    assert len(rig.vms(cohort)) == 3
    made = rig.resources(cohort)
    creations = rig.creations()
    second = cloud.up(cohort, students, ssh_probe=answers)
    assert second.created == []
    assert rig.creations() == creations, "no VM is created for students who have one"
    assert rig.resources(cohort) == made


def test_a_vm_removed_by_hand_is_made_again_alone(rig):
    cohort = unique_cohort("again")
    cloud = rig.make()
    first = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    gone = next(vm for vm in first.vms if vm.student == "student02")
    rig.remove(cloud, cohort, gone)
    second = rig.make().up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert second.created == ["student02"]
    assert len(rig.vms(cohort)) == 2


def test_a_vm_whose_ssh_never_answers_is_named_and_the_other_is_not(rig):
    silent: set[str] = set()

    def probe(ip: str, _timeout: float) -> bool:
        if not silent:
            silent.add(ip)
        return ip not in silent

    report = rig.make().up(unique_cohort("ssh"), ["student01", "student02"], ssh_probe=probe)
    assert not report.ready
    (quiet,) = silent
    [named] = [vm for vm in report.vms if not vm.ssh_ok]
    [other] = [vm for vm in report.vms if vm.ssh_ok]
    assert named.public_ip == quiet, "the silent VM is named by its own address"
    assert other.public_ip != quiet
    assert {named.student, other.student} == {"student01", "student02"}
