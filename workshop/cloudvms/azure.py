"""A cohort's VMs in Azure (azure-mgmt-compute, -network, -resource): planned, created,
listed and removed by their tag.

Before anything is made, ``plan`` checks what would stop the class: the image exists (a
Canonical image, or a managed or gallery image of the subscription), the admin user name is
one Azure allows, the VM sizes are offered to the subscription in the cohort's zones
(resource SKUs and their restrictions) and boot Canonical's generation 2 images, and the
location's vCPU quotas (the size's family and Total Regional vCPUs) hold the cohort next to
what already runs. ``up`` then makes, in the cohort's resource group, one virtual network,
one network security group (SSH and the labs' ports, from ``allow_from``) and, per student,
a static Standard public IP, a network interface and a VM ``<cohort>-<login>`` with SSH key
login only, each tagged ``workshop-cohort=<cohort>`` and ``workshop-student=<login>``,
trying the zones and sizes in the cohort file's order when Azure has no capacity. A second
``up`` finds what the first made by those tags and only adds what is missing; a same-named
VM without the cohort's tag is never changed. A VM's state is its provisioning state, then
the power state of its instance view. ``down`` removes exactly what carries the cohort's
tag, in the order Azure lets go of it (VMs, NICs, public IPs, leftover disks, NSG, VNet,
then the resource group when the kit made it and it is empty), waiting out the 180 s Azure
keeps a deleted VM's NIC reserved for it (NicReservedForAnotherVm), as a zone fallback does
before it attaches the NIC to the next try.

Credentials come from azure-identity's DefaultAzureCredential (environment service
principal, workload or managed identity, ``az login``); the subscription from the cohort
file's ``subscription_id`` or AZURE_SUBSCRIPTION_ID; the endpoint from
WORKSHOP_AZURE_ENDPOINT when set (the tests' local ARM).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import CredentialUnavailableError, DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as compute_models
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as network_models
from azure.mgmt.resource.resources import ResourceManagementClient

from workshop.cloudvms.base import CloudProvider
from workshop.cloudvms.common import (
    beyond_the_oldest,
    estimate,
)
from workshop.cloudvms.model import DownReport, Plan, UpReport, Vm
from workshop.cloudvms.spec import COHORT_TAG, EXPIRES_TAG, STUDENT_TAG, CloudCohortSpec
from workshop.errors import WorkshopError

INSTANCE_VIEWS_AT_ONCE = 64  # power states read in parallel, one call per VM
ARM_SCOPE = "https://management.azure.com/.default"
ENDPOINT_VARIABLE = "WORKSHOP_AZURE_ENDPOINT"
# Canonical's marketplace images: (publisher, offer, sku).
UBUNTU_IMAGES = {
    "22.04": ("Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"),
    "24.04": ("Canonical", "ubuntu-24_04-lts", "server"),
}
# Azure has no room for this size in this zone now: try the next zone, then the next size.
CAPACITY_ERRORS = {
    "SkuNotAvailable",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
}
# A NIC whose VM was deleted (or whose VM's create failed) stays reserved for that VM for
# 180 s: deleting it or attaching it to another VM is refused until then.
NIC_RESERVED = "NicReservedForAnotherVm"
NIC_RESERVED_PATIENCE = 200.0  # seconds
# Admin names Azure refuses for a VM (osProfile.adminUsername), refused here before anything
# is made.
RESERVED_ADMINS = frozenset(
    {
        "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1",
        "1", "123", "a", "actuser", "adm", "admin2", "aspnet", "backup", "console", "david",
        "guest", "john", "owner", "root", "server", "sql", "support", "support_388945a0", "sys",
        "test2", "test3", "user4", "user5",
    }
)  # fmt: skip
REGIONAL_USAGE = "cores"  # the usage entry "Total Regional vCPUs"
# Linux VM names (and host names): 1-64 letters, digits and hyphens, no hyphen at either end.
VM_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$")
ADDRESS_SPACE = "10.42.0.0/16"
SUBNET = "10.42.0.0/20"  # 4091 addresses: a cohort of any size
SUBNET_NAME = "vms"
SSH_PORT = 22
CREDENTIALS_FIX = (
    "run `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (a "
    "service principal), or use a managed identity"
)


def _code(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    return str(getattr(error, "code", "") or "")


def _message(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    return str(getattr(error, "message", "") or exc.message or exc)


def _why(exc: Exception) -> str:
    if isinstance(exc, HttpResponseError):
        return f"{_code(exc) or exc.status_code}: {_message(exc)}"
    return str(exc)


def _patiently(function: Callable[[], Any], codes: set[str], patience: float) -> Any:
    """``function``, again with a growing pause while Azure answers one of ``codes``."""
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            return function()
        except HttpResponseError as exc:
            if _code(exc) not in codes or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(15.0, delay * 2)


def vm_name(cohort: str, student: str) -> str:
    return f"{cohort}-{student}"


class AzureCloud(CloudProvider):
    name = "azure"
    # Azure takes RSA keys of 2048 bits or more and ED25519 (the base default); an NSG rule
    # refuses IPv4 and IPv6 prefixes together
    # (ResourceCannotContainAddressPrefixesFromDifferentAddressFamilies).

    def __init__(
        self,
        spec: CloudCohortSpec,
        *,
        credential: Any = None,
        base_url: str | None = None,
        ca_file: str | None = None,
        polling_interval: float = 5.0,
    ) -> None:
        """``credential``, ``base_url`` and ``ca_file``: the tests' Entra ID and ARM."""
        super().__init__(spec)
        self.location = spec.region.lower()
        self.subscription = spec.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID", "")
        if not self.subscription:
            raise WorkshopError(
                "azure: no subscription: set `subscription_id:` in the cohort file or "
                "AZURE_SUBSCRIPTION_ID (`az account show --query id -o tsv` prints yours)"
            )
        self.credential = credential or DefaultAzureCredential()
        # Throttling (429) and 5xx answers are retried by azure-core, after Retry-After.
        options: dict[str, Any] = {"polling_interval": polling_interval, "retry_total": 8}
        endpoint = base_url or os.environ.get(ENDPOINT_VARIABLE)
        if endpoint:
            options.update(base_url=endpoint, credential_scopes=[ARM_SCOPE])
        if ca_file:
            options["connection_verify"] = ca_file
        self.compute = ComputeManagementClient(self.credential, self.subscription, **options)
        self.network = NetworkManagementClient(self.credential, self.subscription, **options)
        self.resources = ResourceManagementClient(self.credential, self.subscription, **options)
        self.nic_patience = NIC_RESERVED_PATIENCE
        self._key = ""  # the admin's public key and the image, read once per `up`
        self._image: dict[str, str] = {}
        self._network = ("", "")  # the subnet and the NSG, made by prepare
        self._down_students: set[str] = set()

    def group(self, cohort: str) -> str:
        return self.spec.resource_group or f"workshop-{cohort}"

    def _call(self, what: str, function: Callable[[], Any]) -> Any:
        """An API call whose refusal becomes one line naming what the kit was doing."""
        try:
            return function()
        except (CredentialUnavailableError, ClientAuthenticationError) as exc:
            if isinstance(exc, ClientAuthenticationError) and exc.status_code not in (None, 401):
                raise WorkshopError(f"azure: cannot {what}: {_why(exc)}") from None
            first = (str(getattr(exc, "message", "") or exc).strip().splitlines() or [""])[0]
            raise WorkshopError(
                f"azure: no usable credentials to {what} ({first[:200]}): {CREDENTIALS_FIX}"
            ) from None
        except ServiceRequestError as exc:
            raise WorkshopError(
                f"azure: cannot reach Azure to {what}: {exc} (check the network)"
            ) from None
        except HttpResponseError as exc:
            if _code(exc) == "SubscriptionNotFound":
                raise WorkshopError(
                    f"azure: subscription {self.subscription} not found: fix `subscription_id:` "
                    "in the cohort file or AZURE_SUBSCRIPTION_ID (`az account list` shows yours)"
                ) from None
            if exc.status_code == 403:
                # Azure says which: a missing role (AuthorizationFailed), a policy
                # (RequestDisallowedByPolicy), a role on a linked scope (LinkedAuthorization...).
                raise WorkshopError(
                    f"azure: permission denied to {what} ({_why(exc)}): the identity needs the "
                    f"Contributor role on subscription {self.subscription} (or on the resource "
                    "group), and no policy may forbid it"
                ) from None
            raise WorkshopError(f"azure: cannot {what}: {_why(exc)}") from None

    def _safely(self, what: str, function: Callable[[], Any]) -> str | None:
        """A clean-up call: None when it worked, else one line saying why not."""
        try:
            self._call(what, function)
        except WorkshopError as exc:
            return str(exc).removeprefix("azure: ")
        return None

    # --- before anything is made ---------------------------------------------------

    def image_reference(self) -> dict[str, str]:
        """The VM's imageReference, checked to exist in the location."""
        release = self.spec.ubuntu_release()
        image = self.spec.image
        if release:
            publisher, offer, sku = UBUNTU_IMAGES[release]
            version = "latest"
        elif image.lower().startswith("/subscriptions/"):
            self._check_image_id(image)
            return {"id": image}
        elif image.count(":") == 3:
            publisher, offer, sku, version = image.split(":")
        else:
            raise WorkshopError(
                f"azure: image {image!r} is not ubuntu-22.04, ubuntu-24.04, a URN "
                "(Publisher:Offer:Sku:Version) or an image resource id"
            )
        urn = f"{publisher}:{offer}:{sku}:{version}"
        images = self.compute.virtual_machine_images

        def lookup() -> list[Any]:
            try:
                if version == "latest":
                    return list(
                        images.list(
                            self.location, publisher, offer, sku, top=1, orderby="name desc"
                        )
                    )
                return [images.get(self.location, publisher, offer, sku, version)]
            except HttpResponseError as exc:
                if exc.status_code == 404 and _code(exc) != "SubscriptionNotFound":
                    return []  # no such publisher, offer, SKU or version here
                raise

        found = self._call(f"look up image {urn}", lookup)
        if not found:
            raise WorkshopError(
                f"azure: image {urn} does not exist in {self.location}: give another `image` "
                f"(az vm image list --location {self.location} --publisher {publisher} "
                f"--offer {offer} --sku {sku} --all)"
            )
        return {"publisher": publisher, "offer": offer, "sku": sku, "version": version}

    def _check_image_id(self, image: str) -> None:
        """A managed image or a gallery image (version) of this subscription exists."""
        found = re.fullmatch(
            r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Compute/"
            r"(?:images/([^/]+)|galleries/([^/]+)/images/([^/]+)(?:/versions/([^/]+))?)",
            image,
            re.IGNORECASE,
        )
        if not found or found.group(1).lower() != self.subscription.lower():
            return  # another subscription's or a shared gallery's: the VM's PUT checks it
        _, group, managed, gallery, definition, version = found.groups()
        compute = self.compute

        def get() -> Any:
            if managed:
                return compute.images.get(group, managed)
            if version:
                return compute.gallery_image_versions.get(group, gallery, definition, version)
            return compute.gallery_images.get(group, gallery, definition)

        def exists() -> bool:
            try:
                get()
            except HttpResponseError as exc:
                if exc.status_code == 404 and _code(exc) != "SubscriptionNotFound":
                    return False
                raise
            return True

        if not self._call(f"look up image {image}", exists):
            raise WorkshopError(
                f"azure: image {image} does not exist: give another `image` (az image list, "
                "az sig image-version list show yours)"
            )

    def _skus(self) -> dict[str, Any]:
        skus = self._call(
            f"list the VM sizes of {self.location}",
            lambda: list(self.compute.resource_skus.list(filter=f"location eq '{self.location}'")),
        )
        return {
            sku.name: sku
            for sku in skus
            if sku.resource_type == "virtualMachines" and sku.name in self.spec.instance_types
        }

    def _offered_zones(self, sku: Any) -> list[str]:
        """The cohort's zones where the subscription may use the size."""
        zones = {
            zone
            for info in sku.location_info or []
            if (info.location or "").lower() == self.location
            for zone in info.zones or []
        }
        for restriction in sku.restrictions or []:
            kind = restriction.type  # a str enum: compares equal to its value
            info = restriction.restriction_info
            if kind == "Location":
                return []
            if kind == "Zone" and info is not None:
                zones -= set(info.zones or [])
        return [zone for zone in self.spec.zones if zone in zones]

    def cloud_plan(self, students: int, cohort: str = "") -> Plan:
        """Whether ``students`` VMs fit (those ``cohort`` already has count as made)."""
        spec = self.spec
        plan = Plan("azure", self.location, students, hours=spec.hours)
        if cohort:
            try:
                self.check_names(cohort, [f"student{students:02d}"])
            except WorkshopError as exc:
                plan.problems.append(str(exc))
        if spec.admin_user.lower() in RESERVED_ADMINS:
            plan.problems.append(
                f"azure: admin_user {spec.admin_user!r} is a name Azure does not allow for a "
                "VM's admin: pick another `admin_user` (ubuntu, azureuser, ...)"
            )
        try:
            reference = self.image_reference()
            plan.image = reference.get("id") or ":".join(
                reference[key] for key in ("publisher", "offer", "sku", "version")
            )
        except WorkshopError as exc:
            plan.problems.append(str(exc))
        skus = self._skus()
        for kind in spec.instance_types:
            plan.offered[kind] = self._offered_zones(skus[kind]) if kind in skus else []
            generations = {
                c.name: str(c.value or "")
                for c in (skus[kind].capabilities if kind in skus else [])
            }.get("HyperVGenerations")
            if spec.ubuntu_release() and generations and "V2" not in generations.split(","):
                # Canonical's images the kit picks are Hyper-V generation 2 only.
                plan.offered[kind] = []
                plan.problems.append(
                    f"azure: size {kind} boots only Hyper-V generation {generations} images "
                    f"and {spec.image} is generation 2: pick a size that supports V2 (az vm "
                    f"list-skus --location {self.location} --size {kind} shows its "
                    "HyperVGenerations)"
                )
        usable = [kind for kind in spec.instance_types if plan.offered[kind]]
        if not usable:
            plan.problems.append(
                f"azure: none of {', '.join(spec.instance_types)} is offered to this "
                f"subscription in {self.location} zones {', '.join(spec.zones)}: add zones or "
                f"sizes (az vm list-skus --location {self.location} --size "
                f"{spec.instance_types[0]} shows where and its restrictions)"
            )
            return plan
        kind = plan.instance_type = usable[0]
        capabilities = {c.name: c.value for c in skus[kind].capabilities or []}
        plan.vcpus_per_vm = int(float(capabilities.get("vCPUs", "0")))
        plan.gpus_per_vm = int(float(capabilities.get("GPUs", "0")))
        family = str(skus[kind].family or "")
        usages = {  # usages name some families in another case than the SKUs do
            str(u.name.value).lower(): u
            for u in self._call(
                f"read the vCPU quotas of {self.location}",
                lambda: list(self.compute.usage.list(self.location)),
            )
        }
        existing = len([vm for vm in self.vms(cohort) if vm.state != "failed"])
        plan.needed_vcpus = (students - min(existing, students)) * plan.vcpus_per_vm
        plan.quota_code = family
        for usage_name in (family, REGIONAL_USAGE):
            usage = usages.get(usage_name.lower())
            name = (
                usage.name.localized_value
                if usage is not None
                else f"{family} vCPUs"
                if usage_name == family
                else "Total Regional vCPUs"
            )
            limit = float(usage.limit) if usage is not None else 0.0
            used = int(usage.current_value) if usage is not None else 0
            if usage_name == family:
                plan.quota_name, plan.quota_vcpus, plan.used_vcpus = name, limit, used
            available = max(0.0, limit - used)
            if plan.needed_vcpus > available:
                plan.problems.append(
                    f"azure: {students} x {kind} needs {plan.needed_vcpus} vCPUs of the quota "
                    f"'{name}' ({usage_name}) in {self.location}; {available:.0f} are free "
                    f"({limit:.0f} in the quota, {used} in use): request at least "
                    f"{used + plan.needed_vcpus} in the Azure portal (Quotas > Compute, "
                    f"`az vm list-usage --location {self.location}` shows them)"
                    + ("; new subscriptions start at 0 for GPU families" if limit == 0 else "")
                )
                break
        estimate(plan, spec, kind, students)
        return plan

    def check_names(self, cohort: str, students: list[str]) -> None:
        for student in students:
            name = vm_name(cohort, student)
            if not VM_NAME.match(name):
                raise WorkshopError(
                    f"azure: cohort {cohort!r} cannot name its VMs ({name!r}): Azure VM names "
                    "are 1-64 letters, digits and hyphens, not starting or ending with a "
                    "hyphen; pick a shorter cohort name of those"
                )

    # --- what exists ---------------------------------------------------------------

    def _tagged(self, cohort: str, lister: Callable[[], Any]) -> list[Any]:
        """Resources of one kind in the cohort's group carrying its tag ([] without a group)."""
        try:
            items = list(lister())
        except ResourceNotFoundError:
            return []
        except HttpResponseError as exc:
            if _code(exc) == "ResourceGroupNotFound":
                return []
            raise
        return [item for item in items if (item.tags or {}).get(COHORT_TAG) == cohort]

    def _machines(self, cohort: str) -> list[Any]:
        if not cohort:
            return []
        group = self.group(cohort)
        return self._call(
            "list VMs",
            lambda: self._tagged(cohort, lambda: self.compute.virtual_machines.list(group)),
        )

    def _state(self, group: str, machine: Any) -> str:
        """The VM's state: its provisioning state, or once provisioned its power state (read
        from its instance view: ARM lists VMs with theirs only for a scale set's $filter)."""
        provisioning = str(machine.properties.provisioning_state or "")
        if provisioning == "Failed":
            return "failed"
        if provisioning in ("Creating", "Updating"):
            return "pending"
        if provisioning == "Deleting":
            return "deleting"
        view = self._call(
            f"read the state of VM {machine.name}",
            partial(self._instance_view, group, machine.name),
        )
        if view is None:
            return "deleted"
        statuses = [s.code or "" for s in (view.statuses or [])]
        power = next((s.split("/", 1)[1] for s in statuses if s.startswith("PowerState/")), "")
        return power or provisioning.lower()

    def _instance_view(self, group: str, name: str) -> Any:
        """The VM's instance view; None when it has gone since it was listed."""
        try:
            return self.compute.virtual_machines.instance_view(group, name)
        except ResourceNotFoundError:
            return None

    def vms(self, cohort: str) -> list[Vm]:
        machines = self._machines(cohort)
        if not machines:
            return []
        group = self.group(cohort)
        addresses = {
            ip.name: ip.properties.ip_address
            for ip in self._call(
                "list public IPs",
                lambda: self._tagged(cohort, lambda: self.network.public_ip_addresses.list(group)),
            )
        }
        with ThreadPoolExecutor(max_workers=min(INSTANCE_VIEWS_AT_ONCE, len(machines))) as pool:
            states = list(pool.map(partial(self._state, group), machines))
        vms = [
            Vm(
                (m.tags or {}).get(STUDENT_TAG, "?"),
                m.name,
                m.properties.hardware_profile.vm_size,
                (m.zones or [""])[0],
                state,
                addresses.get(f"{m.name}-ip"),
            )
            for m, state in zip(machines, states, strict=True)
        ]
        return sorted(vms, key=lambda vm: (vm.student, vm.instance_id))

    # --- up ------------------------------------------------------------------------

    def _tags(self, cohort: str, **more: str) -> dict[str, str]:
        tags = {COHORT_TAG: cohort, **more}
        if self.spec.expires_at:
            tags[EXPIRES_TAG] = self.spec.expires_at.isoformat()
        return tags

    def _resource_group(self, cohort: str) -> None:
        """The cohort's group: made and tagged when missing, left as it is when there."""
        group = self.group(cohort)
        exists = self._call(
            f"look up resource group {group}",
            lambda: self.resources.resource_groups.check_existence(group),
        )
        if not exists:
            self._call(
                f"create resource group {group}",
                lambda: self.resources.resource_groups.create_or_update(
                    group, {"location": self.location, "tags": self._tags(cohort)}
                ),
            )

    def _security_group(self, cohort: str) -> Any:
        """The NSG; every run PUTs its rules, so a group a failed run left is mended."""
        rules = []
        ports = [SSH_PORT, *self.spec.lab_ports]
        for index, port in enumerate(ports):
            rules.append(
                {
                    "name": f"allow-{port}",
                    "properties": {
                        "priority": 1000 + index,
                        "direction": "Inbound",
                        "access": "Allow",
                        "protocol": "Tcp",
                        "sourcePortRange": "*",
                        "destinationPortRange": str(port),
                        "sourceAddressPrefixes": list(self.spec.allow_from),
                        "destinationAddressPrefix": "*",
                    },
                }
            )
        name = f"workshop-{cohort}-nsg"
        return self._call(
            f"create network security group {name}",
            lambda: self.network.network_security_groups.begin_create_or_update(
                self.group(cohort),
                name,
                network_models.NetworkSecurityGroup(
                    {
                        "location": self.location,
                        "tags": self._tags(cohort),
                        "properties": {"securityRules": rules},
                    }
                ),
            ).result(),
        )

    def _subnet(self, cohort: str) -> str:
        """The cohort's subnet id; its VNet is made once (a PUT would touch its NICs)."""
        group, name = self.group(cohort), f"workshop-{cohort}-vnet"
        networks = self.network.virtual_networks
        vnet: Any
        try:
            vnet = networks.get(group, name)
        except ResourceNotFoundError:
            vnet = self._call(
                f"create virtual network {name}",
                lambda: networks.begin_create_or_update(
                    group,
                    name,
                    network_models.VirtualNetwork(
                        {
                            "location": self.location,
                            "tags": self._tags(cohort),
                            "properties": {
                                "addressSpace": {"addressPrefixes": [ADDRESS_SPACE]},
                                "subnets": [
                                    {"name": SUBNET_NAME, "properties": {"addressPrefix": SUBNET}}
                                ],
                            },
                        }
                    ),
                ).result(),
            )
        except HttpResponseError:
            vnet = self._call(f"read virtual network {name}", lambda: networks.get(group, name))
        return str(vnet.properties.subnets[0].id)

    def _create_vm(self, group: str, name: str, body: dict[str, Any]) -> Any:
        return self.compute.virtual_machines.begin_create_or_update(
            group, name, compute_models.VirtualMachine(body)
        ).result()

    def _delete_vm(self, group: str, name: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.compute.virtual_machines.begin_delete(group, name).result()

    def _launch(
        self,
        cohort: str,
        student: str,
        plan: Plan,
        subnet: str,
        nsg: str,
        failed_before: bool,
    ) -> Any:
        """One student's VM (and its IP and NIC), in the first zone and size with room;
        or why not, as a string."""
        group, name = self.group(cohort), vm_name(cohort, student)
        tags = self._tags(cohort, **{STUDENT_TAG: student})
        try:
            other = self.compute.virtual_machines.get(group, name)
        except ResourceNotFoundError:
            other = None
        except (HttpResponseError, ServiceRequestError) as exc:
            return _why(exc)
        if other is not None and (other.tags or {}).get(COHORT_TAG) != cohort:
            # A PUT would change someone else's VM in a shared group.
            return f"name {name} taken by a VM the kit did not make (no {COHORT_TAG} tag)"
        try:
            if failed_before:  # an earlier allocation failure: its zone may not change
                self._delete_vm(group, name)
            ip = self.network.public_ip_addresses.begin_create_or_update(
                group,
                f"{name}-ip",
                network_models.PublicIPAddress(
                    {
                        "location": self.location,
                        "tags": tags,
                        "sku": {"name": "Standard", "tier": "Regional"},
                        "properties": {
                            "publicIPAllocationMethod": "Static",
                            "publicIPAddressVersion": "IPv4",
                        },
                    }
                ),
            ).result()
            nic = self.network.network_interfaces.begin_create_or_update(
                group,
                f"{name}-nic",
                network_models.NetworkInterface(
                    {
                        "location": self.location,
                        "tags": tags,
                        "properties": {
                            "networkSecurityGroup": {"id": nsg},
                            "ipConfigurations": [
                                {
                                    "name": "ipconfig1",
                                    "properties": {
                                        "subnet": {"id": subnet},
                                        "publicIPAddress": {"id": ip.id},
                                        "privateIPAllocationMethod": "Dynamic",
                                    },
                                }
                            ],
                        },
                    }
                ),
            ).result()
        except (HttpResponseError, ServiceRequestError) as exc:
            return _why(exc)
        user = self.spec.admin_user
        tried = []
        for kind in self.spec.instance_types:
            for zone in plan.offered.get(kind, []):
                body = {
                    "location": self.location,
                    "tags": tags,
                    "zones": [zone],
                    "properties": {
                        "hardwareProfile": {"vmSize": kind},
                        "storageProfile": {
                            "imageReference": self._image,
                            "osDisk": {
                                "name": f"{name}-osdisk",
                                "createOption": "FromImage",
                                "diskSizeGB": self.spec.disk_gb,
                                "deleteOption": "Delete",
                                "managedDisk": {"storageAccountType": "StandardSSD_LRS"},
                            },
                        },
                        "osProfile": {
                            "computerName": name,
                            "adminUsername": user,
                            "linuxConfiguration": {
                                "disablePasswordAuthentication": True,
                                "ssh": {
                                    "publicKeys": [
                                        {
                                            "path": f"/home/{user}/.ssh/authorized_keys",
                                            "keyData": self._key,
                                        }
                                    ]
                                },
                            },
                        },
                        "networkProfile": {
                            "networkInterfaces": [
                                {
                                    "id": nic.id,
                                    "properties": {"primary": True, "deleteOption": "Detach"},
                                }
                            ]
                        },
                    },
                }
                try:
                    # Right after a failed try's VM was deleted, its NIC is still reserved.
                    return _patiently(
                        partial(self._create_vm, group, name, body),
                        {NIC_RESERVED},
                        self.nic_patience,
                    )
                except HttpResponseError as exc:
                    code = _code(exc)
                    if code not in CAPACITY_ERRORS:
                        # A quota, permission or parameter refusal: no other zone helps.
                        return _why(exc)
                    tried.append(f"{kind} in zone {zone}: {code}")
                    # A VM whose allocation failed stays (Failed) and may not change zone.
                    try:
                        self._delete_vm(group, name)
                    except HttpResponseError as gone:
                        return f"{code}, then could not remove the failed VM: {_why(gone)}"
                except ServiceRequestError as exc:
                    return str(exc)
        return "no capacity anywhere it may go (" + "; ".join(tried) + ")"

    def remove_duplicates(self, cohort: str) -> list[str]:
        """A student's second VM (two `up`s at once, or one made by hand): keep the oldest."""
        extra = [
            machine.name
            for machine in beyond_the_oldest(
                self._machines(cohort),
                lambda m: (m.tags or {}).get(STUDENT_TAG, ""),
                lambda m: (m.properties.time_created is None, m.properties.time_created, m.name),
            )
        ]
        group = self.group(cohort)
        pollers = [
            self._call(
                f"remove duplicate VM {name}",
                partial(self.compute.virtual_machines.begin_delete, group, name),
            )
            for name in extra
        ]
        for poller in pollers:
            self._call("remove a duplicate VM", poller.result)
        return extra

    # --- up's primitives (the outline is CloudProvider.up) --------------------------------

    def prepare(self, cohort: str, report: UpReport) -> None:
        self._key = self.spec.public_key()
        self._image = self.image_reference()
        self._resource_group(cohort)
        nsg = self._security_group(cohort)
        report.security_group = str(nsg.name)
        self._network = (self._subnet(cohort), str(nsg.id))

    def existing(self, present: dict[str, Vm]) -> set[str]:
        # A VM in the failed state is made again (launch deletes it first).
        return {student for student, vm in present.items() if vm.state != "failed"}

    def launch(self, cohort: str, student: str, plan: Plan, present: dict[str, Vm]) -> Any:
        subnet, nsg = self._network
        return self._launch(cohort, student, plan, subnet, nsg, student in present)

    # --- down ----------------------------------------------------------------------

    def _delete_all(
        self,
        kind: str,
        items: list[Any],
        begin: Callable[[str], Any],
        wait_out: set[str] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Starts every delete, then waits for each: (names deleted, why others were not).
        ``wait_out``: refusals that pass with time (a NIC its deleted VM still reserves)."""
        started: list[tuple[str, Any]] = []
        left: list[str] = []
        for item in items:
            start = partial(begin, item.name)
            if wait_out:
                start = partial(_patiently, start, wait_out, self.nic_patience)
            try:
                started.append((item.name, self._call(f"delete {kind} {item.name}", start)))
            except WorkshopError as exc:
                left.append(str(exc).removeprefix("azure: "))
        done = []
        for name, poller in started:
            why = self._safely(f"delete {kind} {name}", poller.result)
            if why:
                left.append(why)
            else:
                done.append(name)
        return done, left

    def cohort_present(self, cohort: str) -> bool:
        group = self.group(cohort)
        return bool(
            self._call(
                f"look up resource group {group}",
                lambda: self.resources.resource_groups.check_existence(group),
            )
        )

    def delete_vms(self, cohort: str, report: DownReport) -> None:
        group = self.group(cohort)
        machines = self._machines(cohort)
        # Whose OS disks are the cohort's (delete_the_rest looks for the ones kept).
        self._down_students = {(m.tags or {}).get(STUDENT_TAG, "") for m in machines}
        done, left = self._delete_all(
            "VM",
            machines,
            lambda name: self.compute.virtual_machines.begin_delete(group, name),
        )
        report.terminated += done
        report.left += left

    def delete_the_rest(self, cohort: str, report: DownReport) -> None:
        group = self.group(cohort)
        network = self.network
        students = self._down_students

        def tagged(lister: Callable[[], Any]) -> list[Any]:
            items = self._call("list the cohort's resources", lambda: self._tagged(cohort, lister))
            students.update((item.tags or {}).get(STUDENT_TAG, "") for item in items)
            return items

        steps: list[tuple[str, Callable[[], Any], Callable[[str], Any]]] = [
            (
                "nic",
                lambda: network.network_interfaces.list(group),
                lambda name: network.network_interfaces.begin_delete(group, name),
            ),
            (
                "public-ip",
                lambda: network.public_ip_addresses.list(group),
                lambda name: network.public_ip_addresses.begin_delete(group, name),
            ),
        ]
        for kind, lister, begin in steps:
            # A NIC stays reserved for its deleted VM for 180 s: its delete waits that out.
            wait_out = {NIC_RESERVED} if kind == "nic" else None
            done, left = self._delete_all(kind, tagged(lister), begin, wait_out)
            report.other += [f"{kind} {name}" for name in done]
            report.left += left
        # OS disks a VM kept (deleteOption Detach, an image's data disks): ARM does not
        # copy a VM's tags to its disks, so the kit's own are also known by their name, for
        # this cohort's students only (cohort "nov" must not take "nov-b"'s disks).
        own = {f"{vm_name(cohort, student)}-osdisk".lower() for student in students if student}
        disks = self._call(
            "list disks", lambda: list(self.compute.disks.list_by_resource_group(group))
        )
        leftover = [
            disk
            for disk in disks
            if not disk.managed_by
            and ((disk.tags or {}).get(COHORT_TAG) == cohort or (disk.name or "").lower() in own)
        ]
        done, left = self._delete_all(
            "disk", leftover, lambda name: self.compute.disks.begin_delete(group, name)
        )
        report.volumes += done
        report.left += left
        done, left = self._delete_all(
            "network security group",
            tagged(lambda: network.network_security_groups.list(group)),
            lambda name: network.network_security_groups.begin_delete(group, name),
        )
        report.security_groups += done
        report.left += left
        done, left = self._delete_all(
            "vnet",
            tagged(lambda: network.virtual_networks.list(group)),
            lambda name: network.virtual_networks.begin_delete(group, name),
        )
        report.other += [f"vnet {name}" for name in done]
        report.left += left
        # The group itself only when the kit made it for this cohort and nothing is left in
        # it: deleting a group deletes everything inside, tagged or not.
        resource_group = self._call(
            f"read resource group {group}", lambda: self.resources.resource_groups.get(group)
        )
        if (resource_group.tags or {}).get(COHORT_TAG) == cohort and not report.left:
            inside = self._call(
                f"list what is in {group}",
                lambda: list(self.resources.resources.list_by_resource_group(group)),
            )
            if not inside:
                why = self._safely(
                    f"delete resource group {group}",
                    lambda: self.resources.resource_groups.begin_delete(group).result(),
                )
                if why:
                    report.left.append(why)
                else:
                    report.other.append(f"resource-group {group}")
