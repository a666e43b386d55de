"""A cohort's VMs in AWS EC2 (boto3): planned, created, listed and removed by their tag.

Before anything is made, ``plan`` checks what would stop the class: the image exists, the
instance types are offered in the zones, and the region's on-demand vCPU quota for the
family (Service Quotas) holds the cohort next to what already runs. ``up`` then makes one
key pair and one security group for the cohort and one instance per student, each tagged
``workshop-cohort=<cohort>`` and ``workshop-student=<login>``, trying the zones and types in
the cohort file's order when EC2 has no capacity. A second ``up`` finds what the first made
by those tags and only adds what is missing. ``down`` removes exactly what carries the
cohort's tag. Credentials come from boto3's standard chain (environment, profile, SSO,
instance role); so does the endpoint (``AWS_ENDPOINT_URL``, used by the tests).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import boto3
import botocore.exceptions
from botocore.config import Config

from workshop.cloudvms.base import CloudProvider
from workshop.cloudvms.common import beyond_the_oldest, estimate
from workshop.cloudvms.model import DownReport, Plan, Progress, UpReport, Vm
from workshop.cloudvms.spec import COHORT_TAG, EXPIRES_TAG, STUDENT_TAG, CloudCohortSpec
from workshop.errors import WorkshopError

# EC2 has no room for this type in this zone now: try the next zone, then the next type.
CAPACITY_ERRORS = {
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientCapacity",
    "Unsupported",  # the type is not offered in that zone
}
UBUNTU_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/{release}/stable/current/amd64/hvm/ebs-gp3/ami-id"
)
# Service Quotas codes of the region's on-demand vCPU limits, by instance family.
QUOTAS = {
    "g": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "gr": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "vt": ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    "p": ("L-417A185B", "Running On-Demand P instances"),
    "inf": ("L-1945791B", "Running On-Demand Inf instances"),
    "trn": ("L-2C3B7624", "Running On-Demand Trn instances"),
    "dl": ("L-6E869C2A", "Running On-Demand DL instances"),
    "f": ("L-74FC7D96", "Running On-Demand F instances"),
    "x": ("L-7295265B", "Running On-Demand X instances"),
    "u": ("L-43DA4232", "Running On-Demand High Memory instances"),
}
STANDARD_QUOTA = ("L-1216C47A", "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances")
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
THROTTLED = {"RequestLimitExceeded", "Throttling", "ThrottlingException"}
BATCH = 50  # instance ids per TerminateInstances call
SSH_PORT = 22
DEPENDENCY_WAIT = 180.0  # seconds a security group may stay in use after termination


def quota_for(instance_type: str) -> tuple[str, str]:
    """The vCPU quota an instance type counts against: g4dn.xlarge -> G and VT."""
    family = re.match(r"[a-z]+", instance_type)
    return QUOTAS.get(family.group(0) if family else "", STANDARD_QUOTA)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _tags(cohort: str, **more: str) -> list[dict[str, str]]:
    return [{"Key": COHORT_TAG, "Value": cohort}] + [
        {"Key": key, "Value": value} for key, value in more.items()
    ]


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _safely(what: str, function: Callable[..., Any], **kwargs: Any) -> str | None:
    """A clean-up call: None when it worked, else one line saying why not (never raises)."""
    try:
        function(**kwargs)
    except botocore.exceptions.ClientError as exc:
        return f"{what}: {_code(exc)}"
    except botocore.exceptions.BotoCoreError as exc:
        return f"{what}: {exc}"
    return None


class AwsCloud(CloudProvider):
    name = "aws"
    # A security group keeps IPv4 and IPv6 ranges apart in one rule (IpRanges, Ipv6Ranges).
    mixed_address_families = True
    # ImportKeyPair takes RSA (1024, 2048 or 4096 bits) and ED25519, not ECDSA.
    key_types: ClassVar[dict[str, int]] = {"ssh-ed25519": 0, "ssh-rsa": 1024}

    def __init__(self, spec: CloudCohortSpec, session: boto3.session.Session | None = None) -> None:
        super().__init__(spec)
        self._network = ("", "")  # the key pair and security group, made by prepare
        try:
            self.session = session or boto3.session.Session(region_name=spec.region)
            # Throttling (RequestLimitExceeded) and 5xx answers are retried with backoff.
            config = Config(retries={"mode": "standard", "max_attempts": 8})
            self.ec2 = self.session.client("ec2", config=config)
            # RunInstances: EC2 answers a full zone with HTTP 500, which botocore retries
            # as transient: one retry, then the next zone or type (_launch backs off on
            # throttling itself).
            self.launcher = self.session.client(
                "ec2", config=Config(retries={"mode": "standard", "max_attempts": 2})
            )
            self.quotas = self.session.client("service-quotas", config=config)
            self.ssm = self.session.client("ssm", config=config)
        except botocore.exceptions.BotoCoreError as exc:
            raise WorkshopError(
                f"aws: {exc}: check AWS_PROFILE and ~/.aws/config (aws configure list)"
            ) from None

    def _call(self, what: str, function: Callable[..., Any], **kwargs: Any) -> Any:
        """An API call whose refusal becomes one line naming what the kit was doing."""
        try:
            return function(**kwargs)
        except botocore.exceptions.NoCredentialsError:
            raise WorkshopError(
                "aws: no credentials: run `aws configure` or `aws sso login`, or set "
                "AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            ) from None
        except botocore.exceptions.ClientError as exc:
            message = exc.response.get("Error", {}).get("Message", str(exc))
            raise WorkshopError(f"aws: cannot {what}: {_code(exc)}: {message}") from None
        except botocore.exceptions.BotoCoreError as exc:  # endpoints, expired SSO, ...
            raise WorkshopError(f"aws: cannot {what}: {exc}") from None

    # --- before anything is made ---------------------------------------------------

    def resolve_image(self) -> dict[str, Any]:
        """The image's id, root device name and root snapshot size (GB)."""
        release = self.spec.ubuntu_release()
        if release:
            name = UBUNTU_PARAMETER.format(release=release)
            try:
                found = self._call(
                    f"read Canonical's parameter {name}", self.ssm.get_parameter, Name=name
                )
            except WorkshopError as exc:
                if "ParameterNotFound" not in str(exc):
                    raise
                raise WorkshopError(
                    f"aws: no Ubuntu {release} image in {self.spec.region} (Canonical's "
                    f"parameter {name} is not there): give an AMI id as `image`"
                ) from None
            image_id = str(found["Parameter"]["Value"])
        else:
            image_id = self.spec.image
        images = self._call(
            f"look up image {image_id}", self.ec2.describe_images, ImageIds=[image_id]
        )["Images"]
        if not images:
            raise WorkshopError(f"aws: image {image_id} does not exist in {self.spec.region}")
        root = str(images[0].get("RootDeviceName") or "/dev/sda1")
        size = max(
            (
                int(mapping.get("Ebs", {}).get("VolumeSize") or 0)
                for mapping in images[0].get("BlockDeviceMappings", [])
                if mapping.get("DeviceName") == root
            ),
            default=0,
        )
        return {"id": image_id, "root_device": root, "size_gb": size}

    def cloud_plan(self, students: int, cohort: str = "") -> Plan:
        """Whether ``students`` VMs fit (those ``cohort`` already has count as made)."""
        spec = self.spec
        plan = Plan("aws", spec.region, students, hours=spec.hours)
        try:
            image = self.resolve_image()
            plan.image, plan.root_device = image["id"], image["root_device"]
            if image["size_gb"] > spec.disk_gb:
                plan.problems.append(
                    f"aws: disk_gb {spec.disk_gb} is smaller than the image's root disk "
                    f"({image['size_gb']} GB): raise disk_gb"
                )
        except WorkshopError as exc:
            plan.problems.append(str(exc))
        types = self._call(
            "describe the instance types",
            self.ec2.describe_instance_types,
            InstanceTypes=spec.instance_types,
        )["InstanceTypes"]
        info = {item["InstanceType"]: item for item in types}
        offerings = self._call(
            "list where the instance types are offered",
            self.ec2.describe_instance_type_offerings,
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": spec.instance_types}],
        )["InstanceTypeOfferings"]
        for kind in spec.instance_types:
            # In the cohort file's order: its first zone is the one tried first.
            offered = {o["Location"] for o in offerings if o["InstanceType"] == kind}
            plan.offered[kind] = [zone for zone in spec.zones if zone in offered]
        usable = [kind for kind in spec.instance_types if plan.offered[kind] and kind in info]
        if not usable:
            plan.problems.append(
                f"aws: none of {', '.join(spec.instance_types)} is offered in "
                f"{', '.join(spec.zones)}: add zones or types (aws ec2 "
                "describe-instance-type-offerings --location-type availability-zone)"
            )
            return plan
        kind = plan.instance_type = usable[0]
        plan.vcpus_per_vm = int(info[kind]["VCpuInfo"]["DefaultVCpus"])
        gpus = info[kind].get("GpuInfo", {}).get("Gpus", [])
        plan.gpus_per_vm = sum(int(gpu.get("Count", 0)) for gpu in gpus)
        plan.quota_code, plan.quota_name = quota_for(kind)
        plan.quota_vcpus = self._quota(plan.quota_code)
        plan.used_vcpus = self._used_vcpus(plan.quota_code)
        existing = len(self._instances(cohort))  # a second up reuses them
        plan.needed_vcpus = (students - min(existing, students)) * plan.vcpus_per_vm
        available = max(0.0, plan.quota_vcpus - plan.used_vcpus)
        if plan.needed_vcpus > available:
            plan.problems.append(
                f"aws: {students} x {kind} needs {plan.needed_vcpus} vCPUs of the quota "
                f"'{plan.quota_name}' ({plan.quota_code}) in {spec.region}; "
                f"{available:.0f} are free ({plan.quota_vcpus:.0f} in the quota, "
                f"{plan.used_vcpus} in use): request at least "
                f"{plan.used_vcpus + plan.needed_vcpus} in the Service Quotas console "
                f"(aws service-quotas request-service-quota-increase --service-code ec2 "
                f"--quota-code {plan.quota_code} --desired-value "
                f"{plan.used_vcpus + plan.needed_vcpus}); new accounts start at 0"
            )
        estimate(plan, spec, kind, students)
        return plan

    def _quota(self, code: str) -> float:
        try:
            answer = self._call(
                f"read quota {code}",
                self.quotas.get_service_quota,
                ServiceCode="ec2",
                QuotaCode=code,
            )
        except WorkshopError as exc:
            if "NoSuchResourceException" not in str(exc):
                raise
            # Never raised in this account: the default applies.
            answer = self._call(
                f"read the default of quota {code}",
                self.quotas.get_aws_default_service_quota,
                ServiceCode="ec2",
                QuotaCode=code,
            )
        return float(answer["Quota"]["Value"])

    def _used_vcpus(self, code: str) -> int:
        """vCPUs of the instances running under the same quota in the region."""
        used = 0
        counts: dict[str, int] = {}
        running = [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
        for instance in self._describe(running):
            kind = instance["InstanceType"]
            if instance.get("InstanceLifecycle") == "spot":
                continue  # Spot has quotas of its own
            if quota_for(kind)[0] == code:
                counts[kind] = counts.get(kind, 0) + 1
        if counts:
            types = self._call(
                "describe the running instance types",
                self.ec2.describe_instance_types,
                InstanceTypes=sorted(counts),
            )["InstanceTypes"]
            for item in types:
                used += counts[item["InstanceType"]] * int(item["VCpuInfo"]["DefaultVCpus"])
        return used

    # --- what exists ---------------------------------------------------------------

    def _describe(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        def every_page() -> list[dict[str, Any]]:
            pages = self.ec2.get_paginator("describe_instances").paginate(Filters=filters)
            return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

        return list(self._call("list instances", every_page))

    def _instances(self, cohort: str) -> list[dict[str, Any]]:
        if not cohort:
            return []
        return self._describe(
            [
                {"Name": f"tag:{COHORT_TAG}", "Values": [cohort]},
                {"Name": "instance-state-name", "Values": LIVE_STATES},
            ]
        )

    def vms(self, cohort: str) -> list[Vm]:
        vms = []
        for instance in self._instances(cohort):
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            vms.append(
                Vm(
                    tags.get(STUDENT_TAG, "?"),
                    instance["InstanceId"],
                    instance["InstanceType"],
                    instance["Placement"]["AvailabilityZone"],
                    instance["State"]["Name"],
                    instance.get("PublicIpAddress"),
                )
            )
        return sorted(vms, key=lambda vm: vm.student)

    # --- up ------------------------------------------------------------------------

    def _key_pair(self, cohort: str) -> str:
        name = f"workshop-{cohort}"
        found = self._call(
            "list key pairs",
            self.ec2.describe_key_pairs,
            Filters=[{"Name": f"tag:{COHORT_TAG}", "Values": [cohort]}],
        )["KeyPairs"]
        if found:
            return str(found[0]["KeyName"])
        self._call(
            f"import key pair {name}",
            self.ec2.import_key_pair,
            KeyName=name,
            PublicKeyMaterial=self.spec.public_key().encode(),
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": _tags(cohort)}],
        )
        return name

    def _security_group(self, cohort: str) -> str:
        found = self._call(
            "list security groups",
            self.ec2.describe_security_groups,
            Filters=[{"Name": f"tag:{COHORT_TAG}", "Values": [cohort]}],
        )["SecurityGroups"]
        if found:
            group = str(found[0]["GroupId"])
        else:
            vpcs = self._call(
                "find the default VPC",
                self.ec2.describe_vpcs,
                Filters=[{"Name": "isDefault", "Values": ["true"]}],
            )["Vpcs"]
            if not vpcs:
                raise WorkshopError(
                    f"aws: {self.spec.region} has no default VPC: create one (aws ec2 "
                    "create-default-vpc) or use a region that has one"
                )
            group = self._call(
                "create the security group",
                self.ec2.create_security_group,
                GroupName=f"workshop-{cohort}",
                Description=f"Workshop cohort {cohort}: SSH and the labs' ports",
                VpcId=vpcs[0]["VpcId"],
                TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags(cohort)}],
            )["GroupId"]
        # Every run (re)opens each port on its own: a group a failed run made without its
        # rules, or a cohort file with a new network, is mended; a rule there already is
        # refused as a duplicate, which is fine.
        for port in [SSH_PORT, *self.spec.lab_ports]:
            for cidr in self.spec.allow_from:
                family = "Ipv6Ranges" if ":" in cidr else "IpRanges"
                key = "CidrIpv6" if ":" in cidr else "CidrIp"
                rule = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port}
                try:
                    self.ec2.authorize_security_group_ingress(
                        GroupId=group, IpPermissions=[{**rule, family: [{key: cidr}]}]
                    )
                except botocore.exceptions.ClientError as exc:
                    if _code(exc) != "InvalidPermission.Duplicate":
                        raise WorkshopError(
                            f"aws: cannot open port {port} to {cidr}: {_code(exc)}"
                        ) from None
        return str(group)

    def _launch(
        self, cohort: str, student: str, plan: Plan, key: str, group: str
    ) -> dict[str, Any] | str:
        """One student's instance, in the first zone and type with capacity; or why not."""
        tags = {STUDENT_TAG: student, "Name": f"{cohort}-{student}"}
        if self.spec.expires_at:
            tags[EXPIRES_TAG] = self.spec.expires_at.isoformat()
        tried = []
        for kind in self.spec.instance_types:
            for zone in plan.offered.get(kind, []):
                for attempt in range(6):
                    try:
                        answer = self.launcher.run_instances(
                            ImageId=plan.image,
                            InstanceType=kind,
                            MinCount=1,
                            MaxCount=1,
                            KeyName=key,
                            SecurityGroupIds=[group],
                            Placement={"AvailabilityZone": zone},
                            BlockDeviceMappings=[
                                {
                                    "DeviceName": plan.root_device or "/dev/sda1",
                                    "Ebs": {
                                        "VolumeSize": self.spec.disk_gb,
                                        "VolumeType": "gp3",
                                        "DeleteOnTermination": True,
                                    },
                                }
                            ],
                            TagSpecifications=[
                                {"ResourceType": resource, "Tags": _tags(cohort, **tags)}
                                for resource in ("instance", "volume", "network-interface")
                            ],
                        )
                    except botocore.exceptions.ClientError as exc:
                        code = _code(exc)
                        if code in THROTTLED and attempt < 5:
                            time.sleep(min(20.0, 2.0**attempt))
                            continue
                        if code in CAPACITY_ERRORS:
                            tried.append(f"{kind} in {zone}: {code}")
                            break
                        # A quota, permission or parameter refusal: no other zone helps.
                        message = exc.response.get("Error", {}).get("Message", "")
                        return f"{code}: {message}"
                    except botocore.exceptions.BotoCoreError as exc:
                        return str(exc)
                    return dict(answer["Instances"][0])
        return "no capacity anywhere it may go (" + "; ".join(tried) + ")"

    def remove_duplicates(self, cohort: str) -> list[str]:
        """Two `up`s at once may both launch a student's VM: keep the oldest."""
        extra = [
            instance["InstanceId"]
            for instance in beyond_the_oldest(
                self._instances(cohort),
                lambda i: {t["Key"]: t["Value"] for t in i.get("Tags", [])}.get(STUDENT_TAG, ""),
                lambda i: (i["LaunchTime"], i["InstanceId"]),
            )
        ]
        for batch in _chunks(extra, BATCH):
            self._call("terminate duplicate VMs", self.ec2.terminate_instances, InstanceIds=batch)
        return extra

    # --- up's primitives (the outline is CloudProvider.up) --------------------------------

    def prepare(self, cohort: str, report: UpReport) -> None:
        report.key_pair = self._key_pair(cohort)
        report.security_group = self._security_group(cohort)
        self._network = (report.key_pair, report.security_group)

    def launch(self, cohort: str, student: str, plan: Plan, present: dict[str, Vm]) -> Any:
        key_pair, security_group = self._network
        return self._launch(cohort, student, plan, key_pair, security_group)

    def wait_running(
        self, cohort: str, launched: dict[str, Any], removed: list[str], progress: Progress
    ) -> list[Vm]:
        # What this run made and what was already starting.
        made = [str(instance["InstanceId"]) for instance in launched.values()]
        pending = [vm.instance_id for vm in self.vms(cohort) if vm.state == "pending"]
        waiting = sorted(set(made + pending) - set(removed))
        if waiting:
            progress(f"waiting for {len(waiting)} instances to run")
            try:
                self.ec2.get_waiter("instance_running").wait(
                    InstanceIds=waiting, WaiterConfig={"Delay": 5, "MaxAttempts": 120}
                )
            except botocore.exceptions.WaiterError as exc:
                progress(f"not every instance is running: {exc}")
        return self.vms(cohort)

    # --- down ----------------------------------------------------------------------

    def delete_vms(self, cohort: str, report: DownReport) -> None:
        selector = [{"Name": f"tag:{COHORT_TAG}", "Values": [cohort]}]
        ids = [vm.instance_id for vm in self.vms(cohort)]
        for batch in _chunks(ids, BATCH):
            why = _safely("terminate", self.ec2.terminate_instances, InstanceIds=batch)
            if why:
                report.left += [f"{instance}: {why}" for instance in batch]
            else:
                report.terminated += batch
        # Also what an earlier `down` left shutting down: its network interfaces still hold
        # the security group.
        stopping = self._describe(
            [*selector, {"Name": "instance-state-name", "Values": ["shutting-down"]}]
        )
        waiting = sorted({*report.terminated, *(i["InstanceId"] for i in stopping)})
        if waiting:
            try:
                self.ec2.get_waiter("instance_terminated").wait(
                    InstanceIds=waiting, WaiterConfig={"Delay": 5, "MaxAttempts": 120}
                )
            except botocore.exceptions.WaiterError as exc:
                report.left.append(f"instances still shutting down: {exc}")

    def delete_the_rest(self, cohort: str, report: DownReport) -> None:
        selector = [{"Name": f"tag:{COHORT_TAG}", "Values": [cohort]}]
        groups = self._call(
            "list security groups", self.ec2.describe_security_groups, Filters=selector
        )["SecurityGroups"]
        for group in groups:
            # A terminated instance's network interface lets go of the group a little later.
            deadline = time.monotonic() + DEPENDENCY_WAIT
            while True:
                why = _safely(
                    group["GroupId"], self.ec2.delete_security_group, GroupId=group["GroupId"]
                )
                if not why or "DependencyViolation" not in why or time.monotonic() > deadline:
                    break
                time.sleep(5)
            if why:
                report.left.append(why)
            else:
                report.security_groups.append(group["GroupId"])
        pairs = self._call("list key pairs", self.ec2.describe_key_pairs, Filters=selector)
        for pair in pairs["KeyPairs"]:
            why = _safely(pair["KeyName"], self.ec2.delete_key_pair, KeyName=pair["KeyName"])
            if why:
                report.left.append(why)
            else:
                report.key_pairs.append(pair["KeyName"])
        # Disks an image's own mappings kept after termination (DeleteOnTermination false).
        volumes = self._call(
            "list volumes",
            self.ec2.describe_volumes,
            Filters=[*selector, {"Name": "status", "Values": ["available"]}],
        )["Volumes"]
        for volume in volumes:
            why = _safely(volume["VolumeId"], self.ec2.delete_volume, VolumeId=volume["VolumeId"])
            if why:
                report.left.append(why)
            else:
                report.volumes.append(volume["VolumeId"])
