"""A local HTTPS server speaking Azure Resource Manager's REST API for the kit's VMs.

It answers exactly what ``workshop.cloudvms.azure`` asks of the real azure-mgmt-compute,
-network and -resource clients: resource groups (and what is in one), virtual networks with
their subnets, network security groups, public IP addresses, network interfaces, virtual
machines and their OS disks, the compute SKUs of a location (with HyperVGenerations), its
vCPU usages and quotas (some families named in another case than the SKUs name them, as ARM
does), Canonical's image versions, managed images and gallery image versions. A VM's power
state is in its own instance view (``GET .../instanceView``, or one VM's GET with
``$expand=instanceView``); as ARM, a list never carries instance views and refuses
``$expand=instanceView`` without a scale set's ``$filter`` (400 InvalidParameter). Every
call needs ``api-version`` and the Entra ID bearer token ``tests.fakes.clouds.EntraToken``
hands out for ARM's audience; the App Service managed-identity endpoint (``/msi/token``)
hands one out too, so ``DefaultAzureCredential`` works in a subprocess (IDENTITY_ENDPOINT,
IDENTITY_HEADER).

Long-running operations go as ARM runs them: a PUT answers 201 (a DELETE 202) with an
``Azure-AsyncOperation`` URL, and the change takes effect when that URL is polled (a VM
delete that was never waited for still holds its NIC). It refuses what ARM refuses, in ARM's
error shape ``{"error": {"code", "message"}}``: bad tokens or audiences, unknown
subscriptions, locations and resource groups, invalid names, references to missing subnets,
IPs, NSGs or NICs, a VM without an SSH key, a VM over the family's or the region's vCPU
quota (OperationNotAllowed, the quota message Azure writes), a size not offered in a zone
(SkuNotAvailable), a zone or size marked full (ZonalAllocationFailed on the operation,
leaving the VM Failed as Azure does, and a later PUT may not move its zone), reserved admin
user names, deleting what is still in use, and deleting or attaching a NIC whose VM was just
deleted (NicReservedForAnotherVm: 180 s in ARM, ``nic_reserved_seconds`` here).
``forbidden`` answers matching calls 403 with a given code (a missing role, a policy);
``refused`` lists the code of every refusal. ``throttle`` answers the next N calls with 429
and ``Retry-After``. ``calls`` counts every request (for the benchmark).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workshop.labcloud import pki

ARM_AUDIENCE = "https://management.azure.com"
SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
TENANT = "11111111-2222-3333-4444-555555555555"
TOKEN = "entra-instructor"
IMAGES = {  # (publisher, offer, sku) -> versions, in every location
    ("canonical", "ubuntu-24_04-lts", "server"): ["24.04.202510010", "24.04.202511050"],
    ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"): ["22.04.202511050"],
}
# Size -> (family, vCPUs, GPUs): the SKUs every location of the fake offers.
SIZES = {
    "Standard_NC4as_T4_v3": ("standardNCASv3_T4Family", 4, 1),
    "Standard_NC8as_T4_v3": ("standardNCASv3_T4Family", 8, 1),
    "Standard_NC24ads_A100_v4": ("StandardNCADSA100v4Family", 24, 1),
    "Standard_D4s_v5": ("standardDSv5Family", 4, 0),
}
FAMILY_NAMES = {
    "standardNCASv3_T4Family": "Standard NCASv3_T4 Family vCPUs",
    "StandardNCADSA100v4Family": "Standard NCADS_A100_v4 Family vCPUs",
    "standardDSv5Family": "Standard DSv5 Family vCPUs",
}
# Usages name some families as the SKUs do not: ARM's names differ in case.
USAGE_VALUES = {"StandardNCADSA100v4Family": "standardNCADSA100v4Family"}
# Admin user names ARM refuses for a Linux VM (osProfile.adminUsername).
RESERVED_ADMINS = {
    "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1",
    "1", "123", "a", "actuser", "adm", "admin2", "aspnet", "backup", "console", "david",
    "guest", "john", "owner", "root", "server", "sql", "support", "support_388945a0", "sys",
    "test2", "test3", "user4", "user5",
}  # fmt: skip
REGIONAL = "cores"  # usage name of "Total Regional vCPUs"
# Resource types by the path segment after /providers/.
TYPES = {
    "microsoft.network/virtualnetworks": "Microsoft.Network/virtualNetworks",
    "microsoft.network/networksecuritygroups": "Microsoft.Network/networkSecurityGroups",
    "microsoft.network/publicipaddresses": "Microsoft.Network/publicIPAddresses",
    "microsoft.network/networkinterfaces": "Microsoft.Network/networkInterfaces",
    "microsoft.compute/virtualmachines": "Microsoft.Compute/virtualMachines",
    "microsoft.compute/disks": "Microsoft.Compute/disks",
    "microsoft.compute/images": "Microsoft.Compute/images",
}
_NETWORK_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9_])?$")
_VM_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$")
_GROUP_NAME = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
_TAG_NAME = re.compile(r"[<>%&\\?/]")


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class AzureArmServer:
    """One subscription of the fake ARM; ``start()`` serves it on a free local port."""

    def __init__(self, root: Path, *, subscription: str = SUBSCRIPTION) -> None:
        self.subscription = subscription
        self.tokens: set[str] = {TOKEN}
        self.identity_header = uuid.uuid4().hex  # App Service's X-IDENTITY-HEADER secret
        self.locations: dict[str, list[str]] = {
            "eastus": ["1", "2", "3"],
            "westeurope": ["1", "2", "3"],
        }
        # (location, size) -> why the subscription may not use it: {"type": Location|Zone,
        # "zones": [...]} (NotAvailableForSubscription)
        self.restricted: dict[tuple[str, str], dict[str, Any]] = {}
        # location -> usage name -> limit (a new subscription: 0 for every GPU family)
        self.limits: dict[str, dict[str, float]] = {}
        # (zone, size or None) pairs with no capacity now
        self.full: set[tuple[str, str | None]] = set()
        # A NIC whose VM is deleted stays reserved for it (180 s in ARM): no delete, no
        # other VM may take it. Short here so tests wait little; nic id -> (vm id, until).
        self.nic_reserved_seconds = 0.5
        self.reserved_nics: dict[str, tuple[str, float]] = {}
        self.refused: list[str] = []  # the error code of each refusal, in order
        # (method, path regex, code, message): what a role or policy forbids, answered 403
        # as ARM does (AuthorizationFailed, RequestDisallowedByPolicy, ...)
        self.forbidden: list[tuple[str, str, str, str]] = []
        # size -> its HyperVGenerations capability ("V1,V2" unless set)
        self.generations: dict[str, str] = {}
        self.throttle = 0  # answer the next N calls with 429
        self.retry_after = 1
        self.throttled: list[float] = []  # when each 429 went out
        self.calls: list[str] = []
        self.groups: dict[str, dict[str, Any]] = {}  # lower-case name -> resource group
        self.resources: dict[str, dict[str, Any]] = {}  # lower-case id -> resource
        self.operations: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()
        self._addresses = itertools.count(10)

        ca = pki.certificate_authority("fake-arm")
        tls = pki.server_certificate(ca, ["localhost"], ["127.0.0.1"])
        self.ca_file = root / "arm-ca.crt"
        self.ca_file.write_bytes(ca.public)
        (root / "arm-tls.pem").write_bytes(tls.public + tls.private)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(root / "arm-tls.pem")
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AzureArmServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- what tests look at -----------------------------------------------------------

    def of_type(self, kind: str, group: str | None = None) -> list[dict[str, Any]]:
        """Resources of one type (``virtualMachines``, ``disks``, ...), optionally of a group."""
        with self.lock:
            return [
                r
                for r in self.resources.values()
                if r["type"].rsplit("/", 1)[-1].lower() == kind.lower()
                and (group is None or r["group"].lower() == group.lower())
            ]

    def usage(self, location: str) -> dict[str, int]:
        """vCPUs in use per family and in the region (VMs that hold an allocation)."""
        used: dict[str, int] = {REGIONAL: 0}
        with self.lock:
            for vm in self.of_type("virtualMachines"):
                if vm["location"] != location or vm["properties"]["provisioningState"] == "Failed":
                    continue
                family, vcpus, _ = SIZES[vm["properties"]["hardwareProfile"]["vmSize"]]
                used[family] = used.get(family, 0) + vcpus
                used[REGIONAL] += vcpus
        return used

    def limit(self, location: str, name: str) -> float:
        return self.limits.get(location, {}).get(name, 0.0 if name != REGIONAL else 100.0)

    # --- the model --------------------------------------------------------------------

    def put(self, rid: str, group: str, kind: str, name: str, body: dict[str, Any]) -> dict:
        """Checks a PUT and starts its operation; returns the resource as it is now."""
        location = str(body.get("location", "")).lower()
        if location not in self.locations:
            raise ArmError(
                400,
                "LocationNotAvailableForResourceType",
                f"The provided location '{location}' is not available for resource type "
                f"'{kind}'. List of available regions for the resource type is "
                f"'{','.join(self.locations)}'.",
            )
        for tag in body.get("tags") or {}:
            if _TAG_NAME.search(tag):
                raise ArmError(
                    400, "InvalidTagNameCharacters", f"The tag name '{tag}' has invalid characters."
                )
        properties = dict(body.get("properties") or {})
        existing = self.resources.get(rid.lower())
        short = kind.rsplit("/", 1)[-1]
        if short == "virtualMachines":
            properties = self._check_vm(rid, name, location, body, properties, existing)
        else:
            if not _NETWORK_NAME.match(name):
                raise ArmError(
                    400,
                    "InvalidResourceName",
                    f"Resource name {name} is invalid. The name can be up to 80 characters long. "
                    "It must begin with a word character, and it must end with a word character "
                    "or with '_'. The name may contain word characters or '.', '-', '_'.",
                )
            properties = getattr(self, f"_check_{short}")(rid, location, body, properties)
        resource: dict[str, Any] = {
            "id": rid,
            "name": name,
            "type": kind,
            "location": location,
            "tags": dict(body.get("tags") or {}),
            "group": group,
            "properties": {**properties, "provisioningState": "Updating"},
        }
        if body.get("zones"):
            resource["zones"] = list(body["zones"])
        if body.get("sku"):
            resource["sku"] = body["sku"]
        if short == "virtualMachines":
            resource["properties"]["provisioningState"] = "Creating"
            resource["properties"].setdefault(
                "timeCreated",
                (existing or {}).get("properties", {}).get("timeCreated")
                or dt.datetime.now(dt.UTC).isoformat(),
            )
            resource["properties"].setdefault("vmId", str(uuid.uuid4()))
        self.resources[rid.lower()] = resource
        return resource

    def _check_images(self, _rid: str, _loc: str, _body: dict, props: dict) -> dict:
        return props

    def add_gallery_version(self, group: str, gallery: str, image: str, version: str) -> str:
        """An Azure Compute Gallery image version (tests make it here); returns its id."""
        rid = (
            f"/subscriptions/{self.subscription}/resourceGroups/{group}/providers/"
            f"Microsoft.Compute/galleries/{gallery}/images/{image}/versions/{version}"
        )
        with self.lock:
            self.resources[rid.lower()] = {
                "id": rid,
                "name": version,
                "type": "Microsoft.Compute/galleries/images/versions",
                "location": next(iter(self.locations)),
                "tags": {},
                "group": group,
                "properties": {"provisioningState": "Succeeded"},
            }
        return rid

    def _check_virtualNetworks(self, rid: str, _loc: str, _body: dict, props: dict) -> dict:
        subnets = []
        for subnet in props.get("subnets") or []:
            subnets.append(
                {
                    "id": f"{rid}/subnets/{subnet['name']}",
                    "name": subnet["name"],
                    "properties": {
                        **subnet.get("properties", {}),
                        "provisioningState": "Succeeded",
                    },
                }
            )
        return {**props, "subnets": subnets}

    def _check_networkSecurityGroups(self, _rid: str, _loc: str, _body: dict, props: dict) -> dict:
        for rule in props.get("securityRules") or []:
            if not 100 <= int(rule.get("properties", {}).get("priority", 0)) <= 4096:
                raise ArmError(
                    400,
                    "SecurityRuleInvalidPriority",
                    f"Rule {rule.get('name')}: priority 100-4096",
                )
            prefixes = rule.get("properties", {}).get("sourceAddressPrefixes") or []
            if len({":" in prefix for prefix in prefixes}) > 1:
                raise ArmError(
                    400,
                    "ResourceCannotContainAddressPrefixesFromDifferentAddressFamilies",
                    f"Security rule {rule.get('name')} has address prefixes from different "
                    "address families.",
                )
        return props

    def _check_publicIPAddresses(self, rid: str, _loc: str, body: dict, props: dict) -> dict:
        if (body.get("sku") or {}).get("name") != "Standard":
            raise ArmError(
                400,
                "BasicSkuPublicIpCreationRetired",
                "Basic SKU public IP addresses can no longer be created: use the Standard SKU.",
            )
        old = self.resources.get(rid.lower())
        # From 198.18.0.0/15 (RFC 2544, routed nowhere): a probe of it reaches no one.
        number = next(self._addresses)
        address = (old or {}).get("properties", {}).get("ipAddress") or (
            f"198.{18 + number // 65536 % 2}.{number // 256 % 256}.{number % 256}"
        )
        return {**props, "ipAddress": address}

    def _check_networkInterfaces(self, rid: str, location: str, _body: dict, props: dict) -> dict:
        def exists(reference: str, what: str) -> None:
            if not self._find(reference):
                raise ArmError(
                    400,
                    "InvalidResourceReference",
                    f"Resource {reference} referenced by resource {rid} was not found. Please "
                    f"make sure that the referenced resource exists, and that both resources "
                    f"are in the same region ({what}).",
                )

        for config in props.get("ipConfigurations") or []:
            inner = config.get("properties", {})
            exists(inner.get("subnet", {}).get("id", "<none>"), "subnet")
            if inner.get("publicIPAddress"):
                ip_id = inner["publicIPAddress"]["id"]
                exists(ip_id, "public IP")
                for nic in self.of_type("networkInterfaces"):
                    if (
                        nic["id"].lower() != rid.lower()
                        and ip_id.lower() in json.dumps(nic).lower()
                    ):
                        raise ArmError(
                            400,
                            "PublicIPAddressInUse",
                            f"Resource {ip_id} is already in use by {nic['id']}.",
                        )
        if props.get("networkSecurityGroup"):
            exists(props["networkSecurityGroup"]["id"], "network security group")
        return props

    def _find(self, reference: str) -> dict[str, Any] | None:
        """A resource or a VNet's subnet by id."""
        reference = reference.lower()
        if reference in self.resources:
            return self.resources[reference]
        vnet, _, subnet = reference.partition("/subnets/")
        for item in self.resources.get(vnet, {}).get("properties", {}).get("subnets", []):
            if subnet and item["name"].lower() == subnet:
                return item
        return None

    def _check_vm(
        self, rid: str, name: str, location: str, body: dict, props: dict, existing: dict | None
    ) -> dict:
        if not _VM_NAME.match(name):
            raise ArmError(
                400,
                "InvalidParameter",
                f"Virtual machine name {name!r} is invalid: 1-64 letters, digits and hyphens, "
                "not starting or ending with a hyphen.",
            )
        size = props.get("hardwareProfile", {}).get("vmSize", "")
        if size not in SIZES:
            raise ArmError(
                400, "InvalidParameter", f"The value {size} provided for the VM size is not valid."
            )
        zones = body.get("zones") or []
        zone = zones[0] if zones else ""
        if existing and existing.get("zones", []) != zones:
            raise ArmError(
                409, "PropertyChangeNotAllowed", "Changing property 'zones' is not allowed."
            )
        restriction = self.restricted.get((location, size))
        if (zone and zone not in self.locations[location]) or (
            restriction
            and (restriction["type"] == "Location" or zone in restriction.get("zones", []))
        ):
            raise ArmError(
                409,
                "SkuNotAvailable",
                f"The requested VM size for resource 'Following SKUs have failed for Capacity "
                f"Restrictions: {size}' is currently not available in location '{location}' "
                f"zones '{zone}'. Please try another size or deploy to a different location or "
                "zones. See https://aka.ms/azureskunotavailable for details.",
            )
        profile = props.get("osProfile", {})
        if str(profile.get("adminUsername", "")).lower() in RESERVED_ADMINS:
            raise ArmError(400, "InvalidParameter", "The Admin Username specified is not allowed.")
        linux = profile.get("linuxConfiguration", {})
        keys = linux.get("ssh", {}).get("publicKeys") or []
        for key in keys:  # RSA (2048+ bits) and ED25519 only
            if not str(key.get("keyData", "")).startswith(("ssh-rsa ", "ssh-ed25519 ")):
                raise ArmError(
                    400,
                    "InvalidParameter",
                    "The value of parameter linuxConfiguration.ssh.publicKeys.keyData is invalid.",
                )
        if (linux.get("disablePasswordAuthentication") and not keys) or (
            not linux.get("disablePasswordAuthentication") and not profile.get("adminPassword")
        ):
            raise ArmError(
                400,
                "InvalidParameter",
                "Authentication using either SSH or by user name and password must be enabled in "
                "Linux profile.",
            )
        if not _VM_NAME.match(str(profile.get("computerName", name))):
            raise ArmError(
                400, "InvalidParameter", f"computerName {profile.get('computerName')!r} is invalid."
            )
        image = props.get("storageProfile", {}).get("imageReference", {})
        if image.get("id"):
            if not self._find(image["id"]):
                raise ArmError(
                    404,
                    "ImageNotFound",
                    f"The Image '{image['id']}' cannot be found in '{location}' region.",
                )
            image = {}
        key = (
            str(image.get("publisher", "")).lower(),
            str(image.get("offer", "")).lower(),
            str(image.get("sku", "")).lower(),
        )
        if image and (
            key not in IMAGES or image.get("version") not in ("latest", *IMAGES.get(key, []))
        ):
            raise ArmError(
                404,
                "PlatformImageNotFound",
                f"The platform image '{image.get('publisher')}:{image.get('offer')}:"
                f"{image.get('sku')}:{image.get('version')}' is not available.",
            )
        nics = props.get("networkProfile", {}).get("networkInterfaces") or []
        if not nics:
            raise ArmError(400, "InvalidParameter", "At least one network interface is required.")
        for nic in nics:
            if not self._find(nic["id"]):
                raise ArmError(
                    400,
                    "InvalidResourceReference",
                    f"Resource {nic['id']} referenced by resource {rid} was not found.",
                )
            for vm in self.of_type("virtualMachines"):
                if vm["id"].lower() != rid.lower() and nic["id"].lower() in json.dumps(vm).lower():
                    raise ArmError(
                        409, "NicInUse", f"Network interface {nic['id']} is used by {vm['id']}."
                    )
            self.check_reserved(nic["id"])
        family, vcpus, _ = SIZES[size]
        used = self.usage(location)
        if existing and existing["properties"]["provisioningState"] != "Failed":
            vcpus = 0  # an update of a running VM asks for nothing more
        for usage, what in ((family, f"{family} Cores"), (REGIONAL, "Total Regional Cores")):
            limit, current = self.limit(location, usage), used.get(usage, 0)
            if current + vcpus > limit:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation could not be completed as it results in exceeding approved {what} "
                    f"quota. Additional details - Deployment Model: Resource Manager, Location: "
                    f"{location}, Current Limit: {limit:.0f}, Current Usage: {current}, Additional "
                    f"Required: {vcpus}, (Minimum) New Limit Required: {current + vcpus:.0f}. "
                    "Submit "
                    "a request for Quota increase at https://aka.ms/ProdportalCRP/#blade/"
                    "Microsoft_Azure_Capacity/UsageAndQuota.ReactView by specifying parameters "
                    "listed in the 'Details' section for deployment to succeed.",
                )
        return props

    def complete(self, operation: dict[str, Any]) -> dict[str, Any]:
        """Applies an operation's effect (once) and returns its status body."""
        if operation.get("done"):
            return operation["status"]
        operation["done"] = True
        resource = self.resources.get(operation["id"].lower())
        status: dict[str, Any] = {"name": operation["name"], "status": "Succeeded"}
        if operation["kind"] == "delete":
            self._remove(operation["id"])
        elif resource is not None and resource["type"].endswith("virtualMachines"):
            size = resource["properties"]["hardwareProfile"]["vmSize"]
            zone = (resource.get("zones") or [""])[0]
            if (zone, None) in self.full or (zone, size) in self.full:
                code = "ZonalAllocationFailed" if zone else "AllocationFailed"
                message = (
                    f"Allocation failed. We do not have sufficient capacity for the requested VM "
                    f"size {size} in this zone. Read more about improving likelihood of allocation "
                    "success at http://aka.ms/allocation-guidance"
                )
                resource["properties"]["provisioningState"] = "Failed"
                status = {
                    "name": operation["name"],
                    "status": "Failed",
                    "error": {"code": code, "message": message},
                }
            else:
                resource["properties"]["provisioningState"] = "Succeeded"
                self._os_disk(resource)
        elif resource is not None:
            resource["properties"]["provisioningState"] = "Succeeded"
        operation["status"] = status
        return status

    def _os_disk(self, vm: dict[str, Any]) -> None:
        """The VM's OS disk: made with it, untagged (ARM does not copy a VM's tags)."""
        os_disk = vm["properties"]["storageProfile"]["osDisk"]
        name = os_disk.get("name") or f"{vm['name']}_OsDisk_1_{uuid.uuid4().hex[:8]}"
        rid = (
            f"/subscriptions/{self.subscription}/resourceGroups/{vm['group']}"
            f"/providers/Microsoft.Compute/disks/{name}"
        )
        os_disk["name"] = name
        os_disk.setdefault("managedDisk", {})["id"] = rid
        self.resources[rid.lower()] = {
            "id": rid,
            "name": name,
            "type": "Microsoft.Compute/disks",
            "location": vm["location"],
            "tags": {},
            "group": vm["group"],
            "managedBy": vm["id"],
            "properties": {
                "diskSizeGB": os_disk.get("diskSizeGB", 30),
                "diskState": "Attached",
                "provisioningState": "Succeeded",
            },
        }

    def _remove(self, rid: str) -> None:
        resource = self.resources.pop(rid.lower(), None)
        if resource is None or not resource["type"].endswith("virtualMachines"):
            return
        until = time.monotonic() + self.nic_reserved_seconds
        for nic in resource["properties"].get("networkProfile", {}).get("networkInterfaces", []):
            self.reserved_nics[nic["id"].lower()] = (resource["id"], until)
        os_disk = resource["properties"]["storageProfile"]["osDisk"]
        disk_id = os_disk.get("managedDisk", {}).get("id", "").lower()
        disk = self.resources.get(disk_id)
        if disk is None:
            return
        if os_disk.get("deleteOption") == "Delete":
            self.resources.pop(disk_id)
        else:
            disk.pop("managedBy", None)
            disk["properties"]["diskState"] = "Unattached"

    def check_reserved(self, nic_id: str) -> None:
        """ARM's refusal to delete or attach a NIC its deleted VM still reserves."""
        vm, until = self.reserved_nics.get(nic_id.lower(), ("", 0.0))
        if time.monotonic() < until:
            raise ArmError(
                400,
                "NicReservedForAnotherVm",
                f"Nic(s) in request is reserved for another Virtual Machine for "
                f"{self.nic_reserved_seconds:g} seconds. Please provide another nic(s) or retry "
                f"after {self.nic_reserved_seconds:g} seconds. Reserved VM: {vm}",
            )

    def check_delete(self, resource: dict[str, Any]) -> None:
        """What ARM refuses to delete while something uses it."""
        rid = resource["id"].lower()
        short = resource["type"].rsplit("/", 1)[-1]
        if short == "networkInterfaces":
            self.check_reserved(rid)

        def users(kind: str, needle: str) -> list[dict[str, Any]]:
            return [
                r
                for r in self.of_type(kind)
                if needle in json.dumps(r).lower() and r["id"].lower() != rid
            ]

        if short == "networkInterfaces" and (vms := users("virtualMachines", rid)):
            raise ArmError(
                400,
                "NicInUse",
                f"Network Interface {resource['id']} is used by existing resource {vms[0]['id']}. "
                "In order to delete the network interface, it must be dissociated from the "
                "resource.",
            )
        if short == "publicIPAddresses" and (nics := users("networkInterfaces", rid)):
            raise ArmError(
                400,
                "PublicIPAddressCannotBeDeleted",
                f"Public IP address {resource['id']} can not be deleted since it is still "
                f"allocated to resource {nics[0]['id']}/ipConfigurations/ipconfig1.",
            )
        if short == "networkSecurityGroups" and (nics := users("networkInterfaces", rid)):
            raise ArmError(
                400,
                "InUseNetworkSecurityGroupCannotBeDeleted",
                f"Network security group {resource['id']} cannot be deleted because it is in use "
                f"by the following resources: {nics[0]['id']}.",
            )
        if short == "virtualNetworks" and (nics := users("networkInterfaces", rid + "/subnets/")):
            raise ArmError(
                400,
                "InUseSubnetCannotBeDeleted",
                f"Subnet default is in use by {nics[0]['id']}/ipConfigurations/ipconfig1 and "
                "cannot be deleted.",
            )
        if short == "disks" and resource.get("managedBy"):
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Disk {resource['name']} is attached to VM {resource['managedBy']}.",
            )


def _handler(fake: AzureArmServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

        def log_message(self, *args: object) -> None:
            pass

        def _send(
            self, status: int, body: Any = None, headers: dict[str, str] | None = None
        ) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        def _error(self, error: ArmError, headers: dict[str, str] | None = None) -> None:
            self._send(
                error.status, {"error": {"code": error.code, "message": error.message}}, headers
            )

        def _body(self) -> dict[str, Any]:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return json.loads(raw) if raw else {}

        def _route(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            method = self.command
            body = self._body() if method in ("PUT", "POST", "PATCH") else {}
            with fake.lock:
                fake.calls.append(f"{method} {url.path}")
            try:
                if url.path == "/msi/token":
                    return self._identity(query)
                self._authorise()
                with fake.lock:
                    if fake.throttle > 0:
                        fake.throttle -= 1
                        fake.throttled.append(time.monotonic())
                        raise_throttled = True
                    else:
                        raise_throttled = False
                if raise_throttled:
                    return self._error(
                        ArmError(429, "TooManyRequests", "The request is being throttled."),
                        {"Retry-After": str(fake.retry_after)},
                    )
                if "api-version" not in query:
                    raise ArmError(
                        400,
                        "MissingApiVersionParameter",
                        "The api-version query parameter (?api-version=) is required for all "
                        "requests.",
                    )
                for verb, pattern, code, message in list(fake.forbidden):
                    if verb == method and re.search(pattern, url.path, re.I):
                        raise ArmError(403, code, message)
                with fake.lock:
                    self._arm(method, url.path, query, body)
            except ArmError as error:
                with fake.lock:
                    fake.refused.append(error.code)
                self._error(error)

        do_GET = do_PUT = do_DELETE = do_POST = do_PATCH = do_HEAD = _route

        def _identity(self, query: dict[str, str]) -> None:
            if self.headers.get("X-IDENTITY-HEADER") != fake.identity_header:
                return self._send(401, {"error": "unauthorized", "error_description": "bad header"})
            resource = query.get("resource", "").removesuffix("/.default").rstrip("/")
            return self._send(
                200,
                {
                    "access_token": f"{TOKEN}|aud={resource}|tid={TENANT}",
                    "expires_on": str(int(time.time()) + 3600),
                    "resource": resource,
                    "token_type": "Bearer",
                },
            )

        def _authorise(self) -> None:
            bearer = self.headers.get("Authorization", "")
            base, *parts = bearer.removeprefix("Bearer ").split("|")
            claims = dict(part.split("=", 1) for part in parts if "=" in part)
            if not bearer.startswith("Bearer ") or base not in fake.tokens:
                raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
            if claims.get("aud", "").rstrip("/") != ARM_AUDIENCE:
                raise ArmError(
                    401,
                    "InvalidAuthenticationTokenAudience",
                    f"The access token has been obtained for wrong audience or resource "
                    f"'{claims.get('aud')}'. It should exactly match with one of the allowed "
                    f"audiences '{ARM_AUDIENCE}/'.",
                )

        # --- ARM ------------------------------------------------------------------------

        def _arm(self, method: str, path: str, query: dict[str, str], body: dict) -> None:
            match = re.fullmatch(r"/subscriptions/([^/]+)(/.*)?", path, re.IGNORECASE)
            if not match:
                raise ArmError(404, "NotFound", f"No route for {path}")
            if match.group(1) != fake.subscription:
                raise ArmError(
                    404,
                    "SubscriptionNotFound",
                    f"The subscription '{match.group(1)}' could not be found.",
                )
            rest = match.group(2) or ""
            if op := re.fullmatch(
                r"/providers/[^/]+/locations/[^/]+/operations/([\w-]+)", rest, re.I
            ):
                operation = fake.operations.get(op.group(1))
                if operation is None:
                    raise ArmError(404, "NotFound", "no such operation")
                return self._send(200, fake.complete(operation))
            if re.fullmatch(r"/operationresults/[\w-]+", rest, re.I):
                return self._send(200)
            if re.fullmatch(r"/providers/Microsoft\.Compute/skus", rest, re.I):
                return self._skus(query)
            if loc := re.fullmatch(
                r"/providers/Microsoft\.Compute/locations/([^/]+)/(.*)", rest, re.I
            ):
                location = loc.group(1).lower()
                if location not in fake.locations:
                    raise ArmError(
                        400,
                        "LocationNotAvailableForResourceType",
                        f"The provided location '{location}' is not available for resource type "
                        f"'Microsoft.Compute/locations'. List of available regions: "
                        f"'{','.join(fake.locations)}'.",
                    )
                return self._location(location, loc.group(2))
            group = re.fullmatch(r"/resourcegroups/([^/]+)(/.*)?", rest, re.I)
            if not group:
                raise ArmError(404, "NotFound", f"No route for {path}")
            return self._group(method, group.group(1), group.group(2) or "", query, body)

        def _location(self, location: str, rest: str) -> None:
            if rest.lower() == "usages":
                used = fake.usage(location)
                names = {**FAMILY_NAMES, REGIONAL: "Total Regional vCPUs"}
                value = [
                    {
                        "unit": "Count",
                        "currentValue": used.get(name, 0),
                        "limit": int(fake.limit(location, name)),
                        "name": {
                            "value": USAGE_VALUES.get(name, name),
                            "localizedValue": localized,
                        },
                    }
                    for name, localized in names.items()
                ]
                return self._send(200, {"value": value})
            image = re.fullmatch(
                r"publishers/([^/]+)/artifacttypes/vmimage/offers/([^/]+)/skus/([^/]+)/versions(?:/([^/]+))?",
                rest,
                re.I,
            )
            if not image:
                raise ArmError(404, "NotFound", f"No route for {rest}")
            publisher, offer, sku, version = image.groups()
            versions = IMAGES.get((publisher.lower(), offer.lower(), sku.lower()))
            if versions is None or (version and version not in versions):
                raise ArmError(404, "ArtifactNotFound", "Artifact: VMImage was not found.")
            base = (
                f"/Subscriptions/{fake.subscription}/Providers/Microsoft.Compute/Locations/{location}"
                f"/Publishers/{publisher}/ArtifactTypes/VMImage/Offers/{offer}/Skus/{sku}/Versions"
            )
            items = [{"location": location, "name": v, "id": f"{base}/{v}"} for v in versions]
            if version:
                return self._send(200, {**items[versions.index(version)], "properties": {}})
            return self._send(200, sorted(items, key=lambda item: item["name"], reverse=True))

        def _skus(self, query: dict[str, str]) -> None:
            wanted = re.fullmatch(r"location eq '([^']+)'", query.get("$filter", ""))
            locations = [wanted.group(1).lower()] if wanted else list(fake.locations)
            value = []
            for location in locations:
                for size, (family, vcpus, gpus) in SIZES.items():
                    zones = fake.locations.get(location)
                    if zones is None:
                        continue
                    restrictions = []
                    if (restriction := fake.restricted.get((location, size))) is not None:
                        restricted_zones = restriction.get("zones", [])
                        restrictions.append(
                            {
                                "type": restriction["type"],
                                "values": [location],
                                "restrictionInfo": {
                                    "locations": [location],
                                    "zones": restricted_zones,
                                },
                                "reasonCode": "NotAvailableForSubscription",
                            }
                        )
                    capabilities = [
                        {"name": "vCPUs", "value": str(vcpus)},
                        {"name": "MemoryGB", "value": "28"},
                        {"name": "HyperVGenerations", "value": fake.generations.get(size, "V1,V2")},
                    ]
                    if gpus:
                        capabilities.append({"name": "GPUs", "value": str(gpus)})
                    value.append(
                        {
                            "resourceType": "virtualMachines",
                            "name": size,
                            "tier": "Standard",
                            "size": size.removeprefix("Standard_"),
                            "family": family,
                            "locations": [location],
                            "locationInfo": [{"location": location, "zones": list(zones)}],
                            "capabilities": capabilities,
                            "restrictions": restrictions,
                        }
                    )
            return self._send(200, {"value": value})

        def _group(
            self, method: str, name: str, rest: str, query: dict[str, str], body: dict
        ) -> None:
            key = name.lower()
            if rest == "":
                return self._resource_group(method, name, body)
            group = fake.groups.get(key)
            if group is None:
                raise ArmError(
                    404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
                )
            if rest.lower() == "/resources" and method == "GET":
                items = [
                    {k: r[k] for k in ("id", "name", "type", "location", "tags")}
                    for r in fake.resources.values()
                    if r["group"].lower() == key
                ]
                return self._send(200, {"value": items})
            if re.fullmatch(
                r"/providers/Microsoft\.Compute/galleries/[^/]+/images/[^/]+/versions/[^/]+",
                rest,
                re.I,
            ):
                if method != "GET":
                    raise ArmError(405, "MethodNotAllowed", method)
                version_id = f"/subscriptions/{fake.subscription}/resourceGroups/{name}{rest}"
                if (found := fake.resources.get(version_id.lower())) is None:
                    raise ArmError(
                        404,
                        "ResourceNotFound",
                        f"The Resource '{rest.split('/providers/')[1]}' under resource group "
                        f"'{name}' was not found.",
                    )
                return self._send(200, self._view(found, False))
            match = re.fullmatch(
                r"/providers/(\w+\.\w+/\w+)(?:/([^/]+)(/instanceView)?)?", rest, re.I
            )
            if not match or match.group(1).lower() not in TYPES:
                raise ArmError(404, "NotFound", f"No route for {rest}")
            kind = TYPES[match.group(1).lower()]
            instance_view = query.get("$expand", "").lower() == "instanceview"
            if match.group(3) and (method != "GET" or not kind.endswith("virtualMachines")):
                raise ArmError(404, "NotFound", f"No route for {rest}")
            namespace = kind.split("/")[0]
            resource_name = match.group(2)
            if resource_name is None:
                if method != "GET":
                    raise ArmError(405, "MethodNotAllowed", method)
                if instance_view and not query.get("$filter"):
                    # As ARM: a list's instance views only come for one scale set's VMs.
                    raise ArmError(
                        400,
                        "InvalidParameter",
                        "The value 'instanceView' of parameter '$expand' is only supported with "
                        "a valid '$filter' on a virtual machine scale set id.",
                    )
                items = [
                    self._view(r, False)
                    for r in fake.of_type(kind.rsplit("/", 1)[-1], group["name"])
                ]
                return self._send(200, {"value": items})
            rid = (
                f"/subscriptions/{fake.subscription}/resourceGroups/{group['name']}"
                f"/providers/{kind}/{resource_name}"
            )
            existing = fake.resources.get(rid.lower())
            if method == "GET":
                if existing is None:
                    raise ArmError(
                        404,
                        "ResourceNotFound",
                        f"The Resource '{kind}/{resource_name}' under resource group "
                        f"'{name}' was not found.",
                    )
                if match.group(3):
                    return self._send(200, self._instance_view(existing))
                return self._send(200, self._view(existing, instance_view))
            if method == "PUT":
                if existing and existing["properties"].get("provisioningState") == "Deleting":
                    raise ArmError(409, "Conflict", f"{resource_name} is being deleted.")
                resource = fake.put(rid, group["name"], kind, resource_name, body)
                operation = self._operation(rid, "put")
                return self._send(
                    200 if existing else 201,
                    self._view(resource, False),
                    self._async(namespace, resource, operation),
                )
            if method == "DELETE":
                if existing is None:
                    return self._send(204)
                fake.check_delete(existing)
                existing["properties"]["provisioningState"] = "Deleting"
                operation = self._operation(rid, "delete")
                return self._send(202, None, self._async(namespace, existing, operation))
            raise ArmError(405, "MethodNotAllowed", method)

        def _operation(self, rid: str, kind: str) -> str:
            operation = uuid.uuid4().hex
            fake.operations[operation] = {"id": rid, "kind": kind, "name": operation}
            return operation

        def _async(self, namespace: str, resource: dict, operation: str) -> dict[str, str]:
            url = (
                f"{fake.endpoint}/subscriptions/{fake.subscription}/providers/{namespace}/locations/"
                f"{resource['location']}/operations/{operation}?api-version=2024-01-01"
            )
            # ARM says when to poll again; this one is fast (azure-core reads the ms header
            # when no Retry-After is given, and would wait its own polling_interval after a 0).
            return {"Azure-AsyncOperation": url, "Location": url, "x-ms-retry-after-ms": "5"}

        def _view(self, resource: dict[str, Any], instance_view: bool) -> dict[str, Any]:
            """A resource as ARM shows it; a VM with its instance view only when one VM is
            read with $expand=instanceView."""
            view = {k: v for k, v in resource.items() if k not in ("group", "power")}
            if instance_view and resource["type"].endswith("virtualMachines"):
                view["properties"] = {
                    **resource["properties"],
                    "instanceView": self._instance_view(resource),
                }
            return view

        @staticmethod
        def _instance_view(resource: dict[str, Any]) -> dict[str, Any]:
            """GET .../virtualMachines/{name}/instanceView: its provisioning and power state
            (``resource["power"]`` sets the power state: stopped, deallocated, ...)."""
            state = resource["properties"]["provisioningState"]
            power = {"Succeeded": "running", "Deleting": "stopping"}.get(state, "starting")
            if state == "Failed":
                power = "deallocated"
            return {
                "computerName": resource["properties"].get("osProfile", {}).get("computerName"),
                "statuses": [
                    {"code": f"ProvisioningState/{state.lower()}", "level": "Info"},
                    {"code": f"PowerState/{resource.get('power', power)}", "level": "Info"},
                ],
            }

        def _resource_group(self, method: str, name: str, body: dict) -> None:
            key = name.lower()
            if not _GROUP_NAME.match(name):
                raise ArmError(
                    400, "InvalidResourceGroupName", f"Resource group name '{name}' is invalid."
                )
            group = fake.groups.get(key)
            if method in ("GET", "HEAD"):
                if group is None:
                    raise ArmError(
                        404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
                    )
                return self._send(
                    204 if method == "HEAD" else 200, None if method == "HEAD" else group
                )
            if method == "PUT":
                location = str(body.get("location", "")).lower()
                if location not in fake.locations:
                    raise ArmError(
                        400,
                        "LocationNotAvailableForResourceType",
                        f"The provided location '{location}' is not available for resource groups.",
                    )
                fake.groups[key] = {
                    "id": f"/subscriptions/{fake.subscription}/resourceGroups/{name}",
                    "name": name,
                    "type": "Microsoft.Resources/resourceGroups",
                    "location": location,
                    "tags": dict(body.get("tags") or {}),
                    "properties": {"provisioningState": "Succeeded"},
                }
                return self._send(200 if group else 201, fake.groups[key])
            if method == "DELETE":
                if group is None:
                    return self._send(204)
                # As ARM does: everything in the group goes with it.
                for rid in [r for r, res in fake.resources.items() if res["group"].lower() == key]:
                    fake.resources.pop(rid, None)
                fake.groups.pop(key)
                url = (
                    f"{fake.endpoint}/subscriptions/{fake.subscription}/operationresults/"
                    f"{uuid.uuid4().hex}?api-version=2025-04-01"
                )
                return self._send(202, None, {"Location": url, "x-ms-retry-after-ms": "5"})
            raise ArmError(405, "MethodNotAllowed", method)

    return Handler
