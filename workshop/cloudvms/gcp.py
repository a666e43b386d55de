"""A cohort's VMs in Google Compute Engine (google-cloud-compute, REST): planned, created,
listed and removed by their label.

Before anything is made, ``plan`` checks what would stop the class: the image exists, the
machine types (and the GPU type, which attaches to N1 only) are offered in the cohort
file's zones, the project has the network ``default``, and the quotas hold the cohort next
to what already runs: the region's vCPUs (CPUS or the family's, N2_CPUS ...), external
addresses (IN_USE_ADDRESSES) and SSD disk (SSD_TOTAL_GB: the pd-balanced boot disks), its
GPUs, and the project's CPUS_ALL_REGIONS and GPUS_ALL_REGIONS. ``up`` then
makes one firewall rule for the cohort (``workshop-<cohort>-ssh``: SSH and the labs' ports
from ``allow_from`` to the instances tagged ``workshop-<cohort>``) and one instance per
student named ``<cohort>-<login>``, labelled ``workshop-cohort=<cohort>`` and
``workshop-student=<login>``, trying the zones and types in the cohort file's order when a
zone has no capacity. A second ``up`` finds what the first made by those labels and only
adds what is missing. ``down`` removes exactly what carries the cohort's label (and its
firewall rules, which have no labels, by their names).

Credentials come from Google's standard chain only (GOOGLE_APPLICATION_CREDENTIALS,
``gcloud auth application-default login``, the metadata server); the project from the
cohort file's ``project`` or that chain. ``WORKSHOP_GCP_ENDPOINT`` points the client at
another Compute Engine endpoint (the tests' local one).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

import google.api_core.exceptions as gexc
import google.auth
import google.auth.exceptions
import requests.exceptions
from google.cloud import compute_v1

from workshop.cloudvms.base import CloudProvider
from workshop.cloudvms.common import beyond_the_oldest, estimate
from workshop.cloudvms.model import DownReport, Plan, Progress, UpReport, Vm
from workshop.cloudvms.spec import COHORT_TAG, EXPIRES_TAG, STUDENT_TAG, CloudCohortSpec
from workshop.errors import WorkshopError

T = TypeVar("T")
ENDPOINT_VARIABLE = "WORKSHOP_GCP_ENDPOINT"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
UBUNTU_FAMILIES = {"22.04": "ubuntu-2204-lts", "24.04": "ubuntu-2404-lts-amd64"}
UBUNTU_PROJECT = "ubuntu-os-cloud"
# A zone has no room for this type now: try the next zone, then the next type.
CAPACITY_ERRORS = {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"}
STOCKOUT = "does not have enough resources"
THROTTLED = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
# Families without a vCPU quota of their own (the rest have <FAMILY>_CPUS: N2_CPUS, N4_CPUS,
# C4A_CPUS, ...): they count against the region's CPUS.
SHARED_CPU_FAMILIES = {"n1", "e2", "f1", "g1"}
GPU_METRICS = {
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS",
    "nvidia-tesla-p4": "NVIDIA_P4_GPUS",
    "nvidia-tesla-p100": "NVIDIA_P100_GPUS",
    "nvidia-tesla-v100": "NVIDIA_V100_GPUS",
    "nvidia-tesla-a100": "NVIDIA_A100_GPUS",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
    "nvidia-l4": "NVIDIA_L4_GPUS",
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
}
# Families whose GPUs come with the machine type (g2: L4, a2: A100, a3: H100); a GPU is
# attached (guestAccelerators) only to the others (N1).
BUILT_IN_GPUS = re.compile(r"^[ag]\d+[a-z]*-")
# The only family a GPU is attached to (guestAccelerators).
ATTACHED_GPUS = re.compile(r"^n1-")
# The boot disk's type: no type means pd-standard, an HDD that G2, C3, N4 and C4 refuse.
# pd-balanced (SSD-backed, counted in the region's SSD_TOTAL_GB) suits N1, E2, N2, G2, A2,
# C3 ...; the families that take Hyperdisk only get hyperdisk-balanced.
BOOT_DISK_TYPE = "pd-balanced"
HYPERDISK_ONLY = re.compile(r"^(n4|c4|c4a|c4d|x4|a4|a4x|m4|h4d|g4|a3-ultragpu)-")
HYPERDISK_TYPE = "hyperdisk-balanced"
NETWORK = "global/networks/default"
NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
SSH_PORT = 22
ATTEMPTS = 6  # tries of one call throttled (429, 403 rateLimitExceeded) or failed (500, 503)
BACKOFF = 0.5  # seconds before the second try; doubled each time, at most 20
OPERATION_WAIT = 600.0  # seconds an insert or delete may take
BOOT_WAIT = 600.0  # seconds an instance may stay PROVISIONING / STAGING
DELETES_AT_ONCE = 32
QUOTAS_PAGE = "https://console.cloud.google.com/iam-admin/quotas"


def boot_disk_type(machine_type: str) -> str:
    """pd-balanced, or hyperdisk-balanced for the types that take no persistent disk."""
    return HYPERDISK_TYPE if HYPERDISK_ONLY.match(machine_type) else BOOT_DISK_TYPE


def cpu_metric(machine_type: str, listed: set[str] | None = None) -> str:
    """The regional vCPU quota a machine type counts against: g2-standard-4 -> G2_CPUS,
    n1-standard-4 -> CPUS; with ``listed`` (the region's metrics), a family metric the
    region does not list is CPUS."""
    family = machine_type.split("-")[0]
    metric = f"{family.upper()}_CPUS"
    if family in SHARED_CPU_FAMILIES or (listed is not None and metric not in listed):
        return "CPUS"
    return metric


def gpu_metric(gpu_type: str) -> str:
    """nvidia-tesla-t4 -> NVIDIA_T4_GPUS (a type not in the table: its name, uppercased)."""
    if gpu_type in GPU_METRICS:
        return GPU_METRICS[gpu_type]
    short = gpu_type.removeprefix("nvidia-").removeprefix("tesla-")
    return f"NVIDIA_{short.upper().replace('-', '_')}_GPUS"


def label_time(spec: CloudCohortSpec) -> str | None:
    """``expires_at`` as a label value may spell it: 2026-12-01t18-00-00z (UTC)."""
    if spec.expires_at is None:
        return None
    moment = spec.expires_at
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dt%H-%M-%Sz")


def check_names(cohort: str, students: list[str]) -> None:
    """Every name the cohort's resources get passes Compute Engine's rules, or one line
    says which does not (before anything is made)."""
    why = (
        "lowercase letters, digits and '-', starting with a letter and not ending with '-', "
        "63 characters at most"
    )
    if not cohort or not LABEL_VALUE.fullmatch(cohort):
        raise WorkshopError(
            f"gcp: cohort {cohort!r} cannot be a Compute Engine label: use {why} (e.g. nov-2026)"
        )
    for name in [firewall_name(cohort), *(instance_name(cohort, s) for s in students)]:
        if not NAME.fullmatch(name):
            raise WorkshopError(
                f"gcp: cohort {cohort!r} makes the resource name {name!r}, which Compute "
                f"Engine refuses: names are {why}; rename the cohort (e.g. nov-2026)"
            )
    for student in students:
        if not LABEL_VALUE.fullmatch(student):
            raise WorkshopError(f"gcp: login {student!r} cannot be a Compute Engine label")


def label_filter(cohort: str) -> str:
    """The list filter of what carries the cohort's label: labels.workshop-cohort = "nov-2026"
    (the value quoted, as Compute Engine's filter syntax has string values)."""
    return f'labels.{COHORT_TAG} = "{cohort}"'


def instance_name(cohort: str, student: str) -> str:
    return f"{cohort}-{student}"


def firewall_name(cohort: str) -> str:
    return f"workshop-{cohort}-ssh"


def network_tag(cohort: str) -> str:
    return f"workshop-{cohort}"


def _reason(exc: gexc.GoogleAPICallError) -> str:
    for error in exc.errors or []:
        if isinstance(error, dict) and error.get("reason"):
            return str(error["reason"])
    return str(exc.reason or "")


def _message(exc: gexc.GoogleAPICallError) -> str:
    """The API's own words, without the "GET https://...: " the client puts first."""
    return re.sub(r"^[A-Z]+ https?://\S+: ", "", str(exc.message or exc)).strip()


def _stockout(exc: gexc.GoogleAPICallError) -> bool:
    """A full zone, as the insert call itself answers it (503), rather than its operation."""
    return _reason(exc) in CAPACITY_ERRORS or STOCKOUT in _message(exc)


def _short(url: str) -> str:
    """The last part of a resource URL: .../zones/us-central1-a -> us-central1-a."""
    return url.rstrip("/").rpartition("/")[2]


def _operation_errors(operation: compute_v1.Operation) -> list[tuple[str, str]]:
    if "error" not in operation:
        return []
    return [(error.code, error.message) for error in operation.error.errors]


class GcpCloud(CloudProvider):
    name = "gcp"
    # Project metadata ssh-keys take any OpenSSH key.
    key_types: ClassVar[dict[str, int]] = {
        "ssh-ed25519": 0,
        "ssh-rsa": 1024,
        "ecdsa-sha2-nistp256": 0,
        "ecdsa-sha2-nistp384": 0,
        "ecdsa-sha2-nistp521": 0,
    }
    running_state = "RUNNING"

    def __init__(
        self,
        spec: CloudCohortSpec,
        credentials: Any = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(spec)
        chain_project = None
        if credentials is None:
            try:
                credentials, chain_project = google.auth.default(scopes=SCOPES)
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise WorkshopError(
                    "gcp: no Google credentials: run `gcloud auth application-default login`, "
                    "or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file "
                    f"({str(exc).splitlines()[0]})"
                ) from None
        project = spec.project or chain_project
        if not project:
            raise WorkshopError(
                "gcp: no project: set `project:` in the cohort file (or `gcloud config set "
                "project ...` before `gcloud auth application-default login`)"
            )
        self.project: str = project
        endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE)
        options = {"api_endpoint": endpoint} if endpoint else None

        def client(kind: type[T]) -> T:
            return kind(credentials=credentials, transport="rest", client_options=options)  # type: ignore[call-arg]

        self.instances = client(compute_v1.InstancesClient)
        self.zone_operations = client(compute_v1.ZoneOperationsClient)
        self.global_operations = client(compute_v1.GlobalOperationsClient)
        self.firewalls = client(compute_v1.FirewallsClient)
        self.regions = client(compute_v1.RegionsClient)
        self.projects = client(compute_v1.ProjectsClient)
        self.machine_types = client(compute_v1.MachineTypesClient)
        self.accelerator_types = client(compute_v1.AcceleratorTypesClient)
        self.images = client(compute_v1.ImagesClient)
        self.disks = client(compute_v1.DisksClient)
        self.networks = client(compute_v1.NetworksClient)

    # --- one call -----------------------------------------------------------------------

    def _try(self, function: Callable[..., T], **kwargs: Any) -> T:
        """One API call, tried again with backoff while the API says it is throttled;
        a refusal of the credentials becomes one line naming the fix."""
        for attempt in range(ATTEMPTS):
            try:
                return function(**kwargs)
            except (
                gexc.TooManyRequests,
                gexc.Forbidden,
                gexc.ServiceUnavailable,
                gexc.InternalServerError,
            ) as exc:
                # 503 backendError and 500 are passing too (a stockout is not: its zone stays
                # full); an insert that happened before its answer was lost is answered 409
                # when tried again (handled by callers).
                throttled = (
                    not isinstance(exc, gexc.Forbidden) or _reason(exc) in THROTTLED
                ) and not _stockout(exc)
                if not throttled or attempt == ATTEMPTS - 1:
                    raise
                time.sleep(min(20.0, BACKOFF * 2**attempt))
            except (gexc.Unauthorized, google.auth.exceptions.RefreshError) as exc:
                raise WorkshopError(
                    f"gcp: Google refused the credentials ({exc}): run `gcloud auth "
                    "application-default login` (or check GOOGLE_APPLICATION_CREDENTIALS)"
                ) from None
            except google.auth.exceptions.TransportError as exc:
                raise WorkshopError(f"gcp: cannot reach Google: {exc}") from None
            except requests.exceptions.ConnectionError as exc:
                raise WorkshopError(f"gcp: cannot reach Compute Engine: {exc}") from None
        raise AssertionError("unreachable")

    def _call(self, what: str, function: Callable[..., T], **kwargs: Any) -> T:
        """An API call whose refusal becomes one line naming what the kit was doing."""
        try:
            return self._try(function, project=self.project, **kwargs)
        except gexc.GoogleAPICallError as exc:
            raise WorkshopError(
                f"gcp: cannot {what} in project {self.project}: {_reason(exc) or exc.code}: "
                f"{_message(exc)}"
            ) from None

    def _wait(self, operation: compute_v1.Operation) -> compute_v1.Operation:
        """The finished operation (zone or global), its errors unread."""
        deadline = time.monotonic() + OPERATION_WAIT
        while operation.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise WorkshopError(f"gcp: operation {operation.name} not done after 10 minutes")
            if operation.zone:
                operation = self._try(
                    self.zone_operations.wait,
                    project=self.project,
                    zone=_short(operation.zone),
                    operation=operation.name,
                )
            else:
                operation = self._try(
                    self.global_operations.wait, project=self.project, operation=operation.name
                )
        return operation

    # --- before anything is made ----------------------------------------------------------

    def resolve_image(self) -> compute_v1.Image:
        release = self.spec.ubuntu_release()
        if release:
            project, family, name = UBUNTU_PROJECT, UBUNTU_FAMILIES[release], ""
        else:
            found = re.search(r"projects/([^/]+)/global/images/(family/)?([^/]+)$", self.spec.image)
            if not found:
                raise WorkshopError(
                    f"gcp: image {self.spec.image!r} is neither ubuntu-22.04, ubuntu-24.04 nor "
                    "an image URL (projects/P/global/images/NAME or .../images/family/F)"
                )
            project = found[1]
            family, name = (found[3], "") if found[2] else ("", found[3])
        try:
            if family:
                return self._try(self.images.get_from_family, project=project, family=family)
            return self._try(self.images.get, project=project, image=name)
        except gexc.NotFound:
            what = f"family {family}" if family else name
            raise WorkshopError(
                f"gcp: image {what} does not exist in project {project} (`gcloud compute "
                f"images list --project {project}`): give another `image`"
            ) from None
        except gexc.GoogleAPICallError as exc:
            raise WorkshopError(f"gcp: cannot look up image {self.spec.image}: {exc}") from None

    def _offered(self, plan: Plan) -> dict[str, compute_v1.MachineType]:
        """Fills ``plan.offered``; returns each usable type's description."""
        spec = self.spec
        info: dict[str, compute_v1.MachineType] = {}
        unknown: list[str] = []
        for zone in spec.zones:
            if not zone.startswith(f"{spec.region}-"):
                plan.problems.append(
                    f"gcp: zone {zone} is not in region {spec.region}: list zones of "
                    f"{spec.region} only (`gcloud compute zones list --filter "
                    f"region:{spec.region}`)"
                )
        for kind in spec.instance_types:
            plan.offered[kind] = []
            for zone in spec.zones:
                if zone in unknown:
                    continue
                try:
                    machine = self._try(
                        self.machine_types.get, project=self.project, zone=zone, machine_type=kind
                    )
                    if spec.gpu_type and not machine.accelerators and not ATTACHED_GPUS.match(kind):
                        plan.problems.append(
                            f"gcp: gpu_type {spec.gpu_type} cannot be attached to {kind}: GPUs "
                            "attach only to N1 types (n1-standard-4, ...); G2 (L4), A2 (A100) "
                            "and A3 (H100) types have theirs built in: use one of those, or "
                            "drop gpu_type for a VM without a GPU"
                        )
                        break
                    if spec.gpu_type and not machine.accelerators:
                        self._try(
                            self.accelerator_types.get,
                            project=self.project,
                            zone=zone,
                            accelerator_type=spec.gpu_type,
                        )
                except (gexc.NotFound, gexc.BadRequest) as exc:
                    # The type or GPU is not offered there (404), or the zone does not
                    # exist (400 "Invalid value for field 'zone' ... Unknown zone").
                    words = _message(exc)
                    if "Unknown zone" in words or "field 'zone'" in words:
                        unknown.append(zone)
                    elif isinstance(exc, gexc.BadRequest):
                        raise WorkshopError(
                            f"gcp: cannot look up {kind} in {zone}: {words}"
                        ) from None
                    continue
                except gexc.GoogleAPICallError as exc:
                    raise WorkshopError(
                        f"gcp: cannot look up machine type {kind} in {zone}: {_message(exc)}"
                    ) from None
                plan.offered[kind].append(zone)
                info[kind] = machine
        for zone in unknown:
            plan.problems.append(
                f"gcp: zone {zone} does not exist in project {self.project}: fix `zones` "
                f"(`gcloud compute zones list --filter region:{spec.region}`)"
            )
        return info

    def cloud_plan(self, students: int, cohort: str = "") -> Plan:
        """Whether ``students`` VMs fit (those ``cohort`` already has count as made)."""
        spec = self.spec
        plan = Plan("gcp", spec.region, students, hours=spec.hours)
        if cohort:
            try:
                check_names(cohort, [f"student{students:02d}"])
            except WorkshopError as exc:
                plan.problems.append(str(exc))
        try:
            image = self.resolve_image()
            plan.image = image.self_link
            if image.disk_size_gb > spec.disk_gb:
                plan.problems.append(
                    f"gcp: disk_gb {spec.disk_gb} is smaller than the image's disk "
                    f"({image.disk_size_gb} GB): raise disk_gb"
                )
        except WorkshopError as exc:
            plan.problems.append(str(exc))
        info = self._offered(plan)
        usable = [kind for kind in spec.instance_types if plan.offered[kind]]
        if not usable:
            gpu = f" with {spec.gpu_type}" if spec.gpu_type else ""
            plan.problems.append(
                f"gcp: none of {', '.join(spec.instance_types)}{gpu} is offered in "
                f"{', '.join(spec.zones)}: add zones or types (`gcloud compute "
                "accelerator-types list` and `gcloud compute machine-types list --zones ...`)"
            )
            return plan
        kind = plan.instance_type = usable[0]
        machine = info[kind]
        plan.vcpus_per_vm = int(machine.guest_cpus)
        built_in = machine.accelerators[0] if machine.accelerators else None
        gpu_type = built_in.guest_accelerator_type if built_in else spec.gpu_type
        if built_in:
            plan.gpus_per_vm = int(built_in.guest_accelerator_count)
        elif spec.gpu_type:
            plan.gpus_per_vm = spec.gpus_per_vm
        region = self._call(f"read region {spec.region}", self.regions.get, region=spec.region)
        quotas = {quota.metric: quota for quota in region.quotas}
        project = self._call("read the project's quotas", self.projects.get)
        project_quotas = {quota.metric: quota for quota in project.quotas}
        metric = cpu_metric(kind, set(quotas))
        plan.quota_code = metric
        plan.quota_name = f"{metric} in {spec.region}"
        cpu = quotas.get(metric)
        plan.quota_vcpus = float(cpu.limit) if cpu else 0.0
        plan.used_vcpus = int(cpu.usage) if cpu else 0
        existing = len(self._listed(cohort)) if cohort else 0  # a second up reuses them
        new = students - min(existing, students)
        plan.needed_vcpus = new * plan.vcpus_per_vm
        describe = f"`gcloud compute regions describe {spec.region}` shows them"
        describe_project = (
            f"`gcloud compute project-info describe --project {self.project}` shows it"
        )
        in_region = f"in {spec.region}"
        gpus = f"{students} x {kind} with {plan.gpus_per_vm} {gpu_type}"
        # (quota, where it is held, its scope's words, what needs it, how many, of what)
        checks: list[tuple[str, dict[str, Any], str, str, str, int, str]] = [
            (
                metric,
                quotas,
                in_region,
                describe,
                f"{students} x {kind}",
                plan.needed_vcpus,
                "vCPUs",
            ),
            (
                "CPUS_ALL_REGIONS",
                project_quotas,
                "of the project",
                describe_project,
                f"{students} x {kind}",
                plan.needed_vcpus,
                "vCPUs",
            ),
            (
                "IN_USE_ADDRESSES",
                quotas,
                in_region,
                describe,
                f"{students} VMs (one external IP each)",
                new,
                "addresses",
            ),
            (
                "SSD_TOTAL_GB",
                quotas,
                in_region,
                describe,
                f"{students} x {spec.disk_gb} GB {BOOT_DISK_TYPE} boot disks",
                # Hyperdisk has quotas of its own, not checked here.
                new * spec.disk_gb if boot_disk_type(kind) == BOOT_DISK_TYPE else 0,
                "GB",
            ),
        ]
        if gpu_type and plan.gpus_per_vm:
            # Two quotas hold GPUs: the region's for the type, and the project's for all.
            gpu_quota = gpu_metric(gpu_type)
            if gpu_quota not in quotas:
                plan.problems.append(
                    f"gcp: unknown quota metric {gpu_quota} for GPU {gpu_type}: region "
                    f"{spec.region} lists no such quota ({describe}): check gpu_type, or "
                    "find the GPU's quota on the Console's quotas page "
                    f"({QUOTAS_PAGE}?project={self.project})"
                )
            else:
                checks.append(
                    (gpu_quota, quotas, in_region, describe, gpus, new * plan.gpus_per_vm, "GPUs")
                )
            checks.append(
                (
                    "GPUS_ALL_REGIONS",
                    project_quotas,
                    "of the project",
                    describe_project,
                    gpus,
                    new * plan.gpus_per_vm,
                    "GPUs",
                )
            )
        for name, held, where, how, who, needed, unit in checks:
            quota = held.get(name)
            if quota is None and name != metric and unit != "GPUs":
                continue  # a quota this project does not have does not hold it back
            limit = float(quota.limit) if quota else 0.0
            usage = int(quota.usage) if quota else 0
            free = max(0.0, limit - usage)
            if needed > free:
                gpu_note = "; new projects start at 0 GPUs" if unit == "GPUs" else ""
                plan.problems.append(
                    f"gcp: {who} needs {needed} {unit} of the quota {name} {where}; "
                    f"{free:.0f} are free ({limit:.0f} in the quota, {usage} in use): request "
                    f"at least {usage + needed} on the Console's quotas page ({QUOTAS_PAGE}"
                    f"?project={self.project}, metric compute.googleapis.com/{name.lower()}; "
                    f"{how}){gpu_note}"
                )
        try:
            self._try(self.networks.get, project=self.project, network="default")
        except gexc.NotFound:
            plan.problems.append(
                f"gcp: project {self.project} has no network named default, which the VMs and "
                "the firewall rule use (org projects often have none): create it with "
                f"`gcloud compute networks create default --subnet-mode=auto --project "
                f"{self.project}`"
            )
        except gexc.GoogleAPICallError as exc:
            plan.problems.append(f"gcp: cannot read network default: {_message(exc)}")
        estimate(plan, spec, kind, students)
        return plan

    # --- what exists ----------------------------------------------------------------------

    def _aggregated(self, client: Any, what: str, cohort: str, field: str) -> list[Any]:
        def every_page() -> list[Any]:
            pages = client.aggregated_list(
                request={"project": self.project, "filter": label_filter(cohort)}
            )
            return [item for _, scoped in pages for item in getattr(scoped, field)]

        try:
            return self._try(every_page)
        except gexc.GoogleAPICallError as exc:
            raise WorkshopError(
                f"gcp: cannot list {what} in project {self.project}: {_message(exc)}"
            ) from None

    def _listed(self, cohort: str) -> list[compute_v1.Instance]:
        """Every instance carrying the cohort's label, in any zone."""
        if not cohort:
            return []
        instances = self._aggregated(self.instances, "instances", cohort, "instances")
        return [i for i in instances if i.labels.get(COHORT_TAG) == cohort]

    @staticmethod
    def _vm(instance: compute_v1.Instance) -> Vm:
        address = None
        for interface in instance.network_interfaces:
            for config in interface.access_configs:
                address = address or (config.nat_i_p or None)
        return Vm(
            instance.labels.get(STUDENT_TAG, "?"),
            instance.name,
            _short(instance.machine_type),
            _short(instance.zone),
            instance.status,
            address,
        )

    def vms(self, cohort: str) -> list[Vm]:
        return sorted((self._vm(i) for i in self._listed(cohort)), key=lambda vm: vm.student)

    # --- up -------------------------------------------------------------------------------

    def _firewall(self, cohort: str) -> str:
        """The cohort's rule: SSH and the labs' ports from ``allow_from`` to its VMs' tag;
        a rule an earlier run left with other ranges or ports is mended."""
        name = firewall_name(cohort)
        ranges = sorted(self.spec.allow_from)
        ports = [str(port) for port in [SSH_PORT, *self.spec.lab_ports]]
        wanted = {
            "source_ranges": ranges,
            "allowed": [compute_v1.Allowed(I_p_protocol="tcp", ports=ports)],
        }
        try:
            rule = self._try(self.firewalls.get, project=self.project, firewall=name)
        except gexc.NotFound:
            rule = None
        except gexc.GoogleAPICallError as exc:
            raise WorkshopError(f"gcp: cannot read firewall rule {name}: {_message(exc)}") from None
        if rule is None:
            body = compute_v1.Firewall(
                name=name,
                description=f"Workshop cohort {cohort}: SSH and the labs' ports",
                network=NETWORK,
                direction="INGRESS",
                target_tags=[network_tag(cohort)],
                **wanted,
            )
            try:
                operation = self._try(
                    self.firewalls.insert_unary, project=self.project, firewall_resource=body
                )
            except gexc.Conflict:  # another `up` made it just now
                return name
            except gexc.GoogleAPICallError as exc:
                raise WorkshopError(
                    f"gcp: cannot create firewall rule {name}: {_message(exc)}"
                ) from None
        elif sorted(rule.source_ranges) != ranges or [
            (a.I_p_protocol, list(a.ports)) for a in rule.allowed
        ] != [("tcp", ports)]:
            operation = self._call(
                f"mend firewall rule {name}",
                self.firewalls.patch_unary,
                firewall=name,
                firewall_resource=compute_v1.Firewall(**wanted),
            )
        else:
            return name
        errors = _operation_errors(self._wait(operation))
        if errors:
            raise WorkshopError(f"gcp: firewall rule {name}: {errors[0][0]}: {errors[0][1]}")
        return name

    def _body(self, cohort: str, student: str, kind: str, zone: str, image: str) -> Any:
        labels = {COHORT_TAG: cohort, STUDENT_TAG: student}
        expires = label_time(self.spec)
        if expires:
            labels[EXPIRES_TAG] = expires
        body = compute_v1.Instance(
            name=instance_name(cohort, student),
            machine_type=f"zones/{zone}/machineTypes/{kind}",
            labels=labels,
            tags=compute_v1.Tags(items=[network_tag(cohort)]),
            metadata=compute_v1.Metadata(
                items=[
                    compute_v1.Items(
                        key="ssh-keys", value=f"{self.spec.admin_user}:{self.spec.public_key()}"
                    ),
                    # A project (or its organisation) with OS Login on ignores ssh-keys:
                    # the SSH banner would answer, Ansible could not log in.
                    compute_v1.Items(key="enable-oslogin", value="FALSE"),
                ]
            ),
            disks=[
                compute_v1.AttachedDisk(
                    boot=True,
                    auto_delete=True,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(
                        source_image=image,
                        disk_size_gb=self.spec.disk_gb,
                        disk_type=f"zones/{zone}/diskTypes/{boot_disk_type(kind)}",
                        labels={COHORT_TAG: cohort, STUDENT_TAG: student},
                    ),
                )
            ],
            network_interfaces=[
                compute_v1.NetworkInterface(
                    network=NETWORK,
                    access_configs=[
                        compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")
                    ],
                )
            ],
            # GPUs cannot live-migrate: the API refuses them without TERMINATE.
            scheduling=compute_v1.Scheduling(
                on_host_maintenance="TERMINATE", automatic_restart=True
            ),
        )
        if self.spec.gpu_type and not BUILT_IN_GPUS.match(kind):
            body.guest_accelerators = [
                compute_v1.AcceleratorConfig(
                    accelerator_type=f"zones/{zone}/acceleratorTypes/{self.spec.gpu_type}",
                    accelerator_count=self.spec.gpus_per_vm,
                )
            ]
        return body

    def _launch(self, cohort: str, student: str, plan: Plan) -> str | None:
        """One student's instance, in the first zone and type with room; None when it is
        made, else why not."""
        tried = []
        for kind in self.spec.instance_types:
            for zone in plan.offered.get(kind, []):
                body = self._body(cohort, student, kind, zone, plan.image)
                try:
                    operation = self._try(
                        self.instances.insert_unary,
                        project=self.project,
                        zone=zone,
                        instance_resource=body,
                    )
                    errors = _operation_errors(self._wait(operation))
                except gexc.Conflict:
                    # Another `up` running at once made it in this zone, or a retried insert
                    # that had happened; or a VM the kit did not make has that name.
                    return self._taken(cohort, zone, body.name)
                except gexc.GoogleAPICallError as exc:
                    if _stockout(exc):  # the insert's own 503: the next zone may have room
                        tried.append(f"{kind} in {zone}: {_reason(exc) or exc.code}")
                        continue
                    # A parameter or permission refusal: no other zone helps.
                    return f"{_reason(exc) or exc.code}: {_message(exc)}"
                except WorkshopError as exc:
                    return str(exc)
                if not errors:
                    return None
                code, message = errors[0]
                if code in CAPACITY_ERRORS or STOCKOUT in message:
                    tried.append(f"{kind} in {zone}: {code}")
                    continue
                # QUOTA_EXCEEDED and the rest: another zone of the region does not help.
                return f"{code}: {message}"
        return "no capacity anywhere it may go (" + "; ".join(tried) + ")"

    def _taken(self, cohort: str, zone: str, name: str) -> str | None:
        """None when the instance ``name`` in ``zone`` is the cohort's, else why not."""
        try:
            instance = self._try(self.instances.get, project=self.project, zone=zone, instance=name)
        except gexc.NotFound:
            return f"name {name} in {zone} was taken, then freed: run up again"
        except gexc.GoogleAPICallError as exc:
            return f"cannot read {name} in {zone}: {_message(exc)}"
        label = instance.labels.get(COHORT_TAG)
        if label == cohort:
            return None
        whose = f"cohort {label}" if label else f"no {COHORT_TAG} label"
        return (
            f"name {name} taken by a VM the kit did not make ({whose}; in {zone}): delete "
            "or rename it"
        )

    def _delete(self, zone: str, name: str) -> str | None:
        """Deletes one instance and waits; None when it is gone, else why not."""
        try:
            operation = self._try(
                self.instances.delete_unary, project=self.project, zone=zone, instance=name
            )
            errors = _operation_errors(self._wait(operation))
        except gexc.NotFound:
            return None
        except gexc.GoogleAPICallError as exc:
            return f"{name} in {zone}: {_reason(exc) or exc.code}: {_message(exc)}"
        except WorkshopError as exc:
            return f"{name} in {zone}: {exc}"
        if errors:
            return f"{name} in {zone}: {errors[0][0]}: {errors[0][1]}"
        return None

    def remove_duplicates(self, cohort: str) -> list[str]:
        """Two `up`s at once may both make a student's VM (in two zones): keep the oldest."""
        extra = beyond_the_oldest(
            self._listed(cohort),
            lambda i: i.labels.get(STUDENT_TAG, ""),
            lambda i: (i.creation_timestamp, i.id),
        )
        removed = []
        for instance in extra:
            why = self._delete(_short(instance.zone), instance.name)
            if why:
                raise WorkshopError(f"gcp: cannot delete a duplicate VM: {why}")
            removed.append(f"{instance.name} in {_short(instance.zone)}")
        return removed

    # --- up's primitives (the outline is CloudProvider.up) --------------------------------

    def check_names(self, cohort: str, students: list[str]) -> None:
        check_names(cohort, students)
        self.spec.public_key()  # an unreadable key stops the run before anything is made

    def prepare(self, cohort: str, report: UpReport) -> None:
        report.key_pair = "project metadata: none (key in each VM)"
        report.security_group = self._firewall(cohort)

    def launch(self, cohort: str, student: str, plan: Plan, present: dict[str, Vm]) -> Any:
        return self._launch(cohort, student, plan)  # why not, or None: made

    def wait_running(
        self, cohort: str, launched: dict[str, Any], removed: list[str], progress: Progress
    ) -> list[Vm]:
        deadline = time.monotonic() + BOOT_WAIT
        vms = self.vms(cohort)
        pause = 0.1
        while any(vm.state in ("PROVISIONING", "STAGING") for vm in vms):
            if time.monotonic() > deadline:
                progress("not every instance is running after 10 minutes")
                break
            time.sleep(pause)
            pause = min(5.0, pause * 2)
            vms = self.vms(cohort)
        return vms

    # --- down -----------------------------------------------------------------------------

    def delete_vms(self, cohort: str, report: DownReport) -> None:
        instances = self._listed(cohort)
        with ThreadPoolExecutor(max_workers=DELETES_AT_ONCE) as pool:
            outcomes = list(pool.map(lambda i: self._delete(_short(i.zone), i.name), instances))
        for instance, why in zip(instances, outcomes, strict=True):
            if why:
                report.left.append(why)
            else:
                report.terminated.append(instance.name)

    def delete_the_rest(self, cohort: str, report: DownReport) -> None:
        name = firewall_name(cohort)
        try:
            operation = self._try(self.firewalls.delete_unary, project=self.project, firewall=name)
            errors = _operation_errors(self._wait(operation))
            if errors:
                report.left.append(f"firewall {name}: {errors[0][0]}: {errors[0][1]}")
            else:
                report.other.append(f"firewall {name}")
        except gexc.NotFound:
            pass
        except gexc.GoogleAPICallError as exc:
            report.left.append(f"firewall {name}: {_reason(exc) or exc.code}: {_message(exc)}")
        # Disks a failed run or a VM made without auto-delete left behind.
        for disk in self._aggregated(self.disks, "disks", cohort, "disks"):
            if disk.labels.get(COHORT_TAG) != cohort or disk.users:
                continue
            zone = _short(disk.zone)
            try:
                operation = self._try(
                    self.disks.delete_unary, project=self.project, zone=zone, disk=disk.name
                )
                errors = _operation_errors(self._wait(operation))
            except gexc.NotFound:
                continue
            except gexc.GoogleAPICallError as exc:
                errors = [(_reason(exc) or str(exc.code), _message(exc))]
            if errors:
                report.left.append(f"disk {disk.name} in {zone}: {errors[0][0]}: {errors[0][1]}")
            else:
                report.volumes.append(disk.name)
