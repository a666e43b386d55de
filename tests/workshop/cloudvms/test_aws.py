"""A cohort's VMs in AWS, against moto's EC2 server (behind a proxy that can answer
InsufficientInstanceCapacity for a zone, as EC2 does when it is full) and a Service
Quotas server (moto serves no EC2 quotas), reached by the real boto3 client through the
standard endpoint settings (AWS_ENDPOINT_URL_<SERVICE>). SSH: moto's instances have no
machine behind their addresses, so the probe is given (a real one needs a real VM)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, WORKSHOP, unique_cohort
from tests.fakes.distribution import free_port
from tests.workshop.cloudvms.values import AWS_G_QUOTA, AWS_PLENTY, AWS_REGION
from workshop import ssh
from workshop.cloudvms import aws, spec
from workshop.errors import WorkshopError

REGION = AWS_REGION
G_QUOTA = AWS_G_QUOTA
PLENTY = AWS_PLENTY


@pytest.fixture(scope="module")
def clouds(aws_clouds):
    return aws_clouds


def cohort_file(clouds, **overrides) -> Path:
    content = {
        "provider": "aws",
        "region": REGION,
        "zones": ["us-east-1a", "us-east-1b"],
        "instance_types": ["g4dn.xlarge", "g5.xlarge"],
        "image": clouds["image"],
        "disk_gb": 120,
        "ssh_public_key": str(clouds["dir"] / "admin.pub"),
        "allow_from": ["203.0.113.0/24"],
        "lab_ports": [8000, 8080],
        "hours": 8,
        "expires_at": "2026-12-01T18:00:00Z",
        "prices": {"g4dn.xlarge": 0.526, "g5.xlarge": 1.006},
        **overrides,
    }
    path = clouds["dir"] / f"cohort-{unique_cohort('f')}.yml"
    path.write_text(yaml.safe_dump(content))
    return path


def tagged(clouds, cohort: str) -> dict[str, list[str]]:
    """Every resource carrying the cohort's tag (instances not terminated)."""
    ec2 = clouds["ec2"]
    selector = [{"Name": "tag:workshop-cohort", "Values": [cohort]}]
    instances = [
        i
        for r in ec2.describe_instances(Filters=selector)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    return {
        "instances": sorted(i["InstanceId"] for i in instances),
        "groups": [
            g["GroupId"] for g in ec2.describe_security_groups(Filters=selector)["SecurityGroups"]
        ],
        "keys": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=selector)["KeyPairs"]],
    }


def everything(clouds) -> dict[str, list[str]]:
    """Every instance, security group and key pair in the region, tagged or not."""
    ec2 = clouds["ec2"]
    return {
        "instances": [
            i["InstanceId"]
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
            if i["State"]["Name"] != "terminated"
        ],
        "groups": [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]],
        "keys": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
    }


def cloud_for(clouds, **overrides) -> aws.AwsCloud:
    return aws.AwsCloud(spec.load(cohort_file(clouds, **overrides)))


def answers(_ip: str, _timeout: float) -> bool:
    return True


def test_the_plan_says_what_the_cohort_needs_has_and_costs(clouds):
    plan = cloud_for(clouds).plan(3)
    assert plan.fits, plan.problems
    assert (plan.instance_type, plan.vcpus_per_vm, plan.gpus_per_vm) == ("g4dn.xlarge", 4, 1)
    assert (plan.quota_code, plan.quota_vcpus, plan.needed_vcpus) == (G_QUOTA, PLENTY, 12)
    assert plan.offered["g4dn.xlarge"] == ["us-east-1a", "us-east-1b"]
    assert plan.total_usd == round(3 * 0.526 * 8, 2)


def test_a_cohort_over_the_quota_is_refused_with_the_numbers_and_nothing_is_made(clouds):
    cohort = unique_cohort("quota")
    cloud = cloud_for(clouds)
    used = cloud.plan(1).used_vcpus  # what other tests left running in the region
    clouds["quotas"].applied[G_QUOTA] = used + 8.0
    try:
        with pytest.raises(WorkshopError) as refused:
            cloud.up(cohort, ["student01", "student02", "student03"], ssh_probe=answers)
    finally:
        clouds["quotas"].applied[G_QUOTA] = PLENTY
    message = str(refused.value)
    assert "needs 12 vCPUs" in message
    assert "'Running On-Demand G and VT instances' (L-DB2E81BA)" in message
    assert f"8 are free ({used + 8} in the quota, {used} in use)" in message
    assert f"request at least {used + 12}" in message
    assert tagged(clouds, cohort) == {"instances": [], "groups": [], "keys": []}


def test_a_second_up_counts_the_cohorts_own_vms_once(clouds):
    cohort = unique_cohort("twice")
    cloud = cloud_for(clouds)
    used = cloud.plan(1).used_vcpus
    clouds["quotas"].applied[G_QUOTA] = used + 8.0  # room for exactly two
    try:
        cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
        again = cloud.plan(2, cohort)
        more = cloud.plan(3, cohort)
    finally:
        clouds["quotas"].applied[G_QUOTA] = PLENTY
    assert again.fits, again.problems
    assert again.needed_vcpus == 0
    assert not more.fits, "a third student does not fit"


def test_a_new_account_gets_the_default_quota_zero(clouds):
    clouds["quotas"].applied.pop(G_QUOTA)
    try:
        plan = cloud_for(clouds).plan(1)
    finally:
        clouds["quotas"].applied[G_QUOTA] = PLENTY
    assert not plan.fits
    assert "0 are free" in plan.problems[0]
    assert "new accounts start at 0" in plan.problems[0]


def test_types_not_offered_in_the_zones_and_a_missing_image_are_named(clouds):
    plan = cloud_for(clouds, zones=["us-east-1z"], image="ami-0123456789abcdef0").plan(2)
    assert not plan.fits
    assert any("ami-0123456789abcdef0" in problem for problem in plan.problems)
    assert any(
        "none of g4dn.xlarge, g5.xlarge is offered in us-east-1z" in p for p in plan.problems
    )


def test_zones_are_tried_in_the_cohort_files_order(clouds):
    """The cohort file's first zone first (EC2 lists offerings alphabetically)."""
    cloud = cloud_for(clouds, zones=["us-east-1b", "us-east-1a"])
    assert cloud.plan(1).offered["g4dn.xlarge"] == ["us-east-1b", "us-east-1a"]
    report = cloud.up(unique_cohort("order"), ["student01"], ssh_probe=answers)
    assert [vm.zone for vm in report.vms] == ["us-east-1b"]


def test_up_tags_each_vm_and_opens_only_the_lab_ports(clouds):
    """(A second up making none: test_contract.py.)"""
    cohort = unique_cohort("up")
    cloud = cloud_for(clouds)
    students = ["student01", "student02", "student03"]
    first = cloud.up(cohort, students, ssh_probe=answers)
    assert first.ready, first.failed
    assert sorted(first.created) == students
    made = tagged(clouds, cohort)
    assert len(made["instances"]) == 3
    assert made["keys"] == [f"workshop-{cohort}"]
    described = clouds["ec2"].describe_instances(InstanceIds=made["instances"])["Reservations"]
    for instance in (i for r in described for i in r["Instances"]):
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["workshop-student"] in students
        assert tags["workshop-expires"].startswith("2026-12-01T18:00:00")
        assert instance["KeyName"] == f"workshop-{cohort}"
    group = clouds["ec2"].describe_security_groups(GroupIds=made["groups"])["SecurityGroups"][0]
    opened = {
        (p["FromPort"], tuple(r["CidrIp"] for r in p["IpRanges"])) for p in group["IpPermissions"]
    }
    assert opened == {(port, ("203.0.113.0/24",)) for port in (22, 8000, 8080)}


def test_a_full_zone_moves_on_to_the_next_zone_then_type_and_a_full_region_is_named(clouds):
    proxy = clouds["proxy"]
    cloud = cloud_for(clouds)
    proxy.full = {("us-east-1a", None)}
    try:
        moved = cloud.up(unique_cohort("zone"), ["student01"], ssh_probe=answers)
        assert [(vm.zone, vm.instance_type) for vm in moved.vms] == [("us-east-1b", "g4dn.xlarge")]
        proxy.full = {("us-east-1a", "g4dn.xlarge"), ("us-east-1b", "g4dn.xlarge")}
        other = cloud.up(unique_cohort("type"), ["student01"], ssh_probe=answers)
        assert [vm.instance_type for vm in other.vms] == ["g5.xlarge"]
        proxy.full = {("us-east-1a", None), ("us-east-1b", None)}
        cohort = unique_cohort("full")
        before = everything(clouds)
        full = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
        made = {
            kind: sorted(set(ids) - set(before[kind])) for kind, ids in everything(clouds).items()
        }
    finally:
        proxy.full = set()
    mine = tagged(clouds, cohort)
    assert made == {"instances": [], "groups": mine["groups"], "keys": mine["keys"]}, (
        "the failed run made nothing untagged"
    )
    assert not full.ready
    assert set(full.failed) == {"student01", "student02"}
    assert "InsufficientInstanceCapacity" in full.failed["student01"]
    assert "g5.xlarge in us-east-1b" in full.failed["student01"]
    assert tagged(clouds, cohort)["instances"] == []
    completed = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert sorted(completed.created) == ["student01", "student02"]


def test_a_security_group_a_failed_run_left_without_rules_is_mended(clouds):
    cohort = unique_cohort("rules")
    ec2 = clouds["ec2"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    bare = ec2.create_security_group(
        GroupName=f"workshop-{cohort}",
        Description="made, then the run died",
        VpcId=vpc["VpcId"],
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": [{"Key": "workshop-cohort", "Value": cohort}],
            }
        ],
    )["GroupId"]
    cloud_for(clouds).up(cohort, ["student01"], ssh_probe=answers)
    cloud_for(clouds).up(cohort, ["student01"], ssh_probe=answers)  # the rules are there: fine
    group = ec2.describe_security_groups(GroupIds=[bare])["SecurityGroups"][0]
    assert sorted(rule["FromPort"] for rule in group["IpPermissions"]) == [22, 8000, 8080]


def test_a_students_second_vm_from_two_ups_at_once_is_removed(clouds):
    cohort = unique_cohort("dup")
    cloud = cloud_for(clouds)
    first = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    keep = next(vm.instance_id for vm in first.vms if vm.student == "student01")
    extra = clouds["ec2"].run_instances(  # what a second `up` running at once launched
        ImageId=clouds["image"],
        InstanceType="g4dn.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "workshop-cohort", "Value": cohort},
                    {"Key": "workshop-student", "Value": "student01"},
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]
    again = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    # The oldest stays (by launch time, then id: both runs at once pick the same one).
    kept = [vm.instance_id for vm in again.vms if vm.student == "student01"]
    assert len(kept) == 1
    assert sorted(kept + again.duplicates_removed) == sorted([keep, extra])
    assert len(again.vms) == 2


def test_a_stopped_vm_is_named_not_waited_for(clouds):
    cohort = unique_cohort("stopped")
    cloud = cloud_for(clouds)
    first = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    stopped = next(vm for vm in first.vms if vm.student == "student02")
    clouds["ec2"].stop_instances(InstanceIds=[stopped.instance_id])
    again = cloud.up(cohort, ["student01", "student02"], ssh_probe=answers)
    assert again.seconds < 30, "the stopped VM was waited for"
    assert not again.ready
    assert {vm.student: (vm.state, vm.ssh_ok) for vm in again.vms} == {
        "student01": ("running", True),
        "student02": ("stopped", False),
    }


def test_down_takes_a_leftover_disk_and_without_credentials_names_the_fix(
    clouds, tmp_path, monkeypatch
):
    cohort = unique_cohort("disk")
    cloud = cloud_for(clouds)
    cloud.up(cohort, ["student01"], ssh_probe=answers)
    disk = clouds["ec2"].create_volume(  # an image's own disk kept after termination
        AvailabilityZone="us-east-1a",
        Size=8,
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "workshop-cohort", "Value": cohort}]}
        ],
    )["VolumeId"]
    with monkeypatch.context() as bare:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            bare.delenv(name)
        bare.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        bare.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        bare.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with pytest.raises(WorkshopError) as refused:
            cloud_for(clouds).down(cohort)
    assert "aws: no credentials" in str(refused.value)
    report = cloud.down(cohort)
    assert disk in report.volumes
    assert report.left == []


def test_down_removes_exactly_the_cohort_and_is_safe_to_repeat(clouds):
    cloud = cloud_for(clouds)
    kept, removed = unique_cohort("kept"), unique_cohort("gone")
    cloud.up(kept, ["student01"], ssh_probe=answers)
    cloud.up(removed, ["student01", "student02"], ssh_probe=answers)
    before = tagged(clouds, kept)
    report = cloud.down(removed)
    assert len(report.terminated) == 2
    assert len(report.security_groups) == 1
    assert report.key_pairs == [f"workshop-{removed}"]
    assert report.left == []
    assert tagged(clouds, removed) == {"instances": [], "groups": [], "keys": []}
    assert tagged(clouds, kept) == before
    again = cloud.down(removed)
    assert (again.terminated, again.security_groups, again.key_pairs) == ([], [], [])


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"allow_from": ["10.0.0.300/24"]}, "allow_from"),
        ({"zones": []}, "zones"),
        ({"provider": "openstack"}, "provider"),
        ({"lab_ports": [22]}, "lab_ports"),
    ],
)
def test_a_bad_cohort_file_is_one_line_naming_the_key(clouds, change, named):
    path = cohort_file(clouds, **change)
    with pytest.raises(WorkshopError) as refused:
        spec.load(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert named in str(refused.value)


def test_the_cli_creates_writes_the_inventory_reports_ssh_and_removes(clouds, state_root):
    """Through `workshop cloud up --provider aws` as the instructor runs it: the estimate,
    the VMs, the inventory site.yml reads; moto's addresses answer no SSH, so each VM is
    named and the exit status is 1; then status and down."""
    cohort = unique_cohort("cli")
    config = cohort_file(clouds)
    env = {**os.environ, **clouds["env"], "WORKSHOP_STATE_DIR": str(state_root)}

    def workshop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(WORKSHOP), "cloud", *args], capture_output=True, text=True, env=env, check=False
        )

    up = workshop(
        "up",
        "--provider",
        "aws",
        "--config",
        str(config),
        "--cohort",
        cohort,
        "--students",
        "2",
        "--ssh-timeout",
        "1",
        "--json",
    )
    assert up.returncode == 1, up.stderr
    report = json.loads(up.stdout)
    assert report["plan"]["total_usd"] == round(2 * 0.526 * 8, 2)
    assert [vm["ssh_ok"] for vm in report["vms"]] == [False, False]
    assert "no SSH answer: student01, student02" in up.stderr
    inventory = yaml.safe_load((state_root / cohort / "inventory.yml").read_text())
    hosts = inventory["all"]["children"]["student_vms"]["hosts"]
    assert sorted(hosts) == ["student-01", "student-02"]
    assert inventory["all"]["vars"]["ansible_user"] == "ubuntu"
    assert inventory["all"]["vars"]["ansible_ssh_private_key_file"] == str(clouds["dir"] / "admin")
    status = workshop("status", "--cohort", cohort, "--json")
    assert [vm["student"] for vm in json.loads(status.stdout)] == ["student01", "student02"]
    down = workshop("down", "--cohort", cohort)
    assert down.returncode == 0, down.stderr
    assert "2 instances" in down.stdout
    assert tagged(clouds, cohort) == {"instances": [], "groups": [], "keys": []}


def test_a_dry_run_prints_the_plan_and_makes_nothing(clouds, state_root):
    cohort = unique_cohort("dry")
    env = {**os.environ, **clouds["env"], "WORKSHOP_STATE_DIR": str(state_root)}
    command = [
        str(WORKSHOP),
        "cloud",
        "up",
        "--provider",
        "aws",
        "--config",
        str(cohort_file(clouds)),
        "--cohort",
        cohort,
        "--students",
        "5",
        "--dry-run",
    ]
    fits = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert fits.returncode == 0, fits.stderr
    assert "5 x g4dn.xlarge (4 vCPUs, 1 GPU each) in us-east-1a, us-east-1b" in fits.stdout
    assert "20 vCPUs needed" in fits.stdout
    assert "about $21.04" in fits.stderr  # 5 x 0.526 x 8 h
    used = aws.AwsCloud(spec.load(cohort_file(clouds))).plan(1).used_vcpus
    clouds["quotas"].applied[G_QUOTA] = used + 4.0
    try:
        over = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    finally:
        clouds["quotas"].applied[G_QUOTA] = PLENTY
    assert over.returncode == 1
    assert "needs 20 vCPUs" in over.stderr
    assert tagged(clouds, cohort) == {"instances": [], "groups": [], "keys": []}


def test_without_credentials_the_fix_is_named(clouds, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(WorkshopError) as refused:
        cloud_for(clouds).plan(1)
    assert "aws: no credentials" in str(refused.value)
    assert "aws configure" in str(refused.value)


@pytest.mark.parametrize(
    ("name", "provider", "first_type"),
    [
        ("cloud-cohort.example.yml", "aws", "g4dn.xlarge"),
        ("cloud-cohort-gcp.example.yml", "gcp", "n1-standard-4"),
        ("cloud-cohort-azure.example.yml", "azure", "Standard_NC4as_T4_v3"),
    ],
)
def test_the_example_cohort_files_are_valid(name, provider, first_type):
    example = spec.load(REPO / "inventory" / name)
    assert example.provider == provider
    assert example.ubuntu_release() == "24.04"
    assert example.instance_types[0] == first_type
    assert example.price(first_type) is not None


@pytest.mark.parametrize(
    ("greeting", "answers"), [(b"SSH-2.0-OpenSSH_9.6\r\n", True), (b"HTTP/1.1 400\r\n", False)]
)
def test_the_ssh_probe_waits_for_a_banner(greeting, answers):
    """What `up` waits for on each VM: an SSH server's banner, not just an open port."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(greeting)

    threading.Thread(target=serve, daemon=True).start()
    try:
        assert ssh.banner_answers("127.0.0.1", 0.5, port=port) is answers
    finally:
        server.close()
    assert ssh.banner_answers("127.0.0.1", 0.5, port=free_port()) is False  # nothing listens


@pytest.mark.parametrize(
    ("instance_type", "code"),
    [
        ("g6.xlarge", "L-DB2E81BA"),
        ("p5.48xlarge", "L-417A185B"),
        ("dl1.24xlarge", "L-6E869C2A"),
        ("f1.2xlarge", "L-74FC7D96"),
        ("x2idn.16xlarge", "L-7295265B"),
        ("u-6tb1.56xlarge", "L-43DA4232"),
        ("m7i.large", "L-1216C47A"),
    ],
)
def test_each_family_counts_against_its_own_vcpu_quota(instance_type, code):
    """DL, F, X and High Memory types have quotas of their own, not the standard one."""
    assert aws.quota_for(instance_type)[0] == code
