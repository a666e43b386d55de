"""What every provider must do, checked once against each cloud's fake through its real
SDK: the plan names an admin key or a network list the cloud refuses; ``up`` makes one VM
per student and a second ``up`` makes none; a VM removed by hand is made again, alone; a
VM whose SSH never answers is named, the others are not. (What is particular to one
cloud, its tags, rules and refusals, is in test_<provider>.py.)"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique_cohort
from tests.workshop.cloudvms import test_aws, test_azure, test_gcp
from workshop.cloudvms.base import CloudProvider


@dataclass
class Rig:
    """One cloud's fake, seen the same way for every provider."""

    name: str
    make: Callable[..., CloudProvider]  # the cohort file's settings may be overridden
    resources: Callable[[str], dict[str, list[str]]]  # the cohort's, by kind
    vms: Callable[[str], list[str]]  # the cohort's VMs in the fake
    creations: Callable[[], int]  # how many VM creations the fake has been asked for
    remove: Callable[[CloudProvider, str, Any], None]  # a VM deleted by hand


def aws_rig(clouds: dict) -> Rig:
    return Rig(
        name="aws",
        make=lambda **changes: test_aws.cloud_for(clouds, **changes),
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
        name="gcp",
        make=lambda **changes: test_gcp.cloud_for(clouds, **changes),
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
        name="azure",
        make=lambda **changes: test_azure.cloud_for(arm, **changes),
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


def key(tmp_path: Path, kind: str, bits: int | None = None) -> str:
    """A public key of ``kind`` made by ssh-keygen."""
    path = tmp_path / f"{kind}-{bits}"
    size = ["-b", str(bits)] if bits else []
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, *size, "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return str(path) + ".pub"


# What each cloud imports: EC2's ImportKeyPair takes RSA and ED25519; Azure RSA of 2048
# bits or more and ED25519; Compute Engine's metadata any OpenSSH key.
REFUSED_KEYS = {
    "aws": [("ecdsa", 256)],
    "gcp": [],
    "azure": [("ecdsa", 256), ("rsa", 1024)],
}


def test_the_plan_names_an_admin_key_the_cloud_does_not_import(rig, tmp_path):
    for kind, bits in [("ed25519", None), ("rsa", 3072), ("ecdsa", 256), ("rsa", 1024)]:
        plan = rig.make(ssh_public_key=key(tmp_path, kind, bits)).plan(1)
        refused = [p for p in plan.problems if "ssh_public_key" in p]
        if (kind, bits) in REFUSED_KEYS[rig.name]:
            assert refused, (kind, bits)
            assert "ssh-keygen -t ed25519" in refused[0]
        else:
            assert refused == [], (kind, bits, refused)


def test_the_plan_names_ipv4_and_ipv6_together_where_one_rule_cannot_hold_them(rig):
    mixed = ["203.0.113.0/24", "2001:db8::/32"]
    problems = rig.make(allow_from=mixed).plan(1).problems
    named = [p for p in problems if "mixes IPv4 and IPv6" in p]
    # EC2 keeps them apart in one rule (IpRanges, Ipv6Ranges); GCE and ARM refuse them.
    assert bool(named) is (rig.name != "aws"), problems
