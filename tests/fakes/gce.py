"""A local server speaking Compute Engine's REST API (v1) to the real google-cloud-compute
client, for exactly the calls ``workshop.cloudvms.gcp`` makes.

Served (https://cloud.google.com/compute/docs/reference/rest/v1): instances insert, get,
list, delete and aggregatedList; zone and global operations get and wait; firewalls
insert, get, list, patch and delete; regions get (quotas whose usage follows the
instances: CPUs, IN_USE_ADDRESSES, SSD_TOTAL_GB, GPUs) and projects get (CPUS_ALL_REGIONS,
GPUS_ALL_REGIONS); networks get (``default``, unless ``default_network`` is off);
machineTypes and acceleratorTypes get; images get and getFromFamily (the
``ubuntu-os-cloud`` families); disks aggregatedList and delete; and ``POST /token``, the
OAuth2 endpoint a service-account key's ``token_uri`` names.

Refused as the real API refuses, in its error shapes (``{"error": {"code", "message",
"errors": [{"reason", ...}]}}``, and operations finished with ``error.errors[].code``):
a request without a token this fake issued or a self-signed JWT of a registered service
account (401); an unknown project (404) or zone (400 "Unknown zone"); a name that is not
RFC 1035 (400 "Invalid value for field 'resource.name'"); label keys or values outside
``[a-z0-9_-]``; a duplicate name (409 alreadyExists); GPUs without
``onHostMaintenance: TERMINATE`` (400); a machine type, GPU type or image that does not
exist; a boot disk of no type (pd-standard) on G2/C3, a persistent disk on N4/C4
(Hyperdisk only); GPUs attached to a type other than N1; a list filter it cannot parse (400
"Invalid list filter expression"); no network ``default``; a regional or project quota
exceeded, each insert charged (operation error QUOTA_EXCEEDED); a zone (or zone and
machine type) marked ``full`` (operation error ZONE_RESOURCE_POOL_EXHAUSTED); when
``throttle`` is set, that many requests answered ``throttle_status`` (429 or 403
rateLimitExceeded, 503 backendError, 500); with ``lose_answers``, inserts made but
answered 503. Instances go
PROVISIONING -> RUNNING ``boot_seconds`` after insert, with a 198.18.x.y natIP. Every API
call is counted in ``calls``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "ml-workshop"
REGION = "us-central1"
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c")
SERVICE_ACCOUNT = "workshop-kit@ml-workshop.iam.gserviceaccount.com"
NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
# name -> (guestCpus, built-in accelerator, its count)
MACHINE_TYPES: dict[str, tuple[int, str | None, int]] = {
    "n1-standard-4": (4, None, 0),
    "n1-standard-8": (8, None, 0),
    "g2-standard-4": (4, "nvidia-l4", 1),
    "g2-standard-8": (8, "nvidia-l4", 1),
    "e2-standard-4": (4, None, 0),
    "n2-standard-4": (4, None, 0),
    "c3-standard-4": (4, None, 0),
    "n4-standard-4": (4, None, 0),
}
# nvidia-tesla-p4: offered, but (here) no regional quota lists it
ACCELERATORS = ("nvidia-tesla-t4", "nvidia-l4", "nvidia-tesla-p4")
GPU_METRICS = {"nvidia-tesla-t4": "NVIDIA_T4_GPUS", "nvidia-l4": "NVIDIA_L4_GPUS"}
# other families count against CPUS
CPU_METRICS = {"g2": "G2_CPUS", "n2": "N2_CPUS", "c3": "C3_CPUS", "n4": "N4_CPUS"}
# Boot disk types a family refuses (no diskType is pd-standard): G2 and C3 take no HDD,
# N4 and C4 take Hyperdisk only.
REFUSED_DISKS = {
    "g2": {"pd-standard"},
    "c3": {"pd-standard"},
    "n4": {"pd-standard", "pd-balanced", "pd-ssd"},
    "c4": {"pd-standard", "pd-balanced", "pd-ssd"},
}
SSD_DISKS = {"pd-balanced", "pd-ssd"}  # counted in SSD_TOTAL_GB; pd-standard: DISKS_TOTAL_GB
IMAGE_FAMILIES = {
    "ubuntu-2404-lts-amd64": "ubuntu-2404-noble-amd64-v20261120",
    "ubuntu-2204-lts": "ubuntu-2204-jammy-v20261120",
}
# A new project's regional quotas: a few CPUs, no GPUs.
NEW_PROJECT_LIMITS = {
    "CPUS": 24.0,
    "G2_CPUS": 24.0,
    "N2_CPUS": 24.0,
    "C3_CPUS": 24.0,
    "N4_CPUS": 24.0,
    "NVIDIA_T4_GPUS": 0.0,
    "NVIDIA_L4_GPUS": 0.0,
    "IN_USE_ADDRESSES": 8.0,
    "SSD_TOTAL_GB": 500.0,
    "DISKS_TOTAL_GB": 4096.0,
}
# How a throttled or failing call is answered: status -> (reason, domain, message)
FAILURES = {
    429: ("rateLimitExceeded", "usageLimits", "Rate Limit Exceeded"),
    403: ("rateLimitExceeded", "usageLimits", "Rate Limit Exceeded"),
    503: ("backendError", "global", "Backend Error"),
    500: ("internalError", "global", "Internal Error"),
}
API = "/compute/v1/"


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def _now() -> str:
    return (
        dt.datetime.now(dt.UTC)
        .astimezone(dt.timezone(dt.timedelta(hours=-8)))
        .isoformat(timespec="milliseconds")
    )


class GceServer:
    def __init__(self, project: str = PROJECT, region: str = REGION) -> None:
        self.project = project
        self.region = region
        self.zones: dict[str, str] = {zone: region for zone in ZONES}
        # zone -> GPU types offered there (us-central1-c offers no L4 here)
        self.accelerators: dict[str, set[str]] = {zone: set(ACCELERATORS) for zone in ZONES}
        self.accelerators["us-central1-c"] = {"nvidia-tesla-t4"}
        self.limits: dict[str, float] = dict(NEW_PROJECT_LIMITS)
        self.gpus_all_regions = 0.0  # the project's GPUS_ALL_REGIONS (a new project's: 0)
        self.cpus_all_regions = 32.0  # the project's CPUS_ALL_REGIONS
        self.default_network = True  # False: the project has no network named default
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.firewalls: dict[str, dict[str, Any]] = {}
        self.disks: dict[tuple[str, str], dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.full: set[tuple[str, str | None]] = set()  # (zone, machine type or None: any)
        # Full zones whose stockout the insert call itself answers (503), not its operation.
        self.full_at_insert: set[tuple[str, str | None]] = set()
        self.throttle = 0  # the next N API calls are answered throttle_status (FAILURES)
        self.throttle_status = 429
        self.lose_answers = 0  # the next N instance inserts happen, but are answered 503
        self.throttled = 0
        self.boot_seconds = 0.05
        self.calls: list[str] = []
        self.inserts: list[tuple[str, str]] = []  # (zone, machine type) of each insert
        self.tokens: set[str] = set()
        self.service_accounts: dict[str, bytes] = {}  # email -> public key (PEM)
        self.lock = threading.RLock()
        self._ids = itertools.count(4_700_000_000_000_000_000)
        self._addresses = itertools.count(2)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> GceServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- identities ---------------------------------------------------------------------

    def issue_token(self) -> str:
        token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        return token

    def authorised(self, bearer: str) -> bool:
        if bearer in self.tokens:
            return True
        try:
            issuer = jwt.decode(bearer, options={"verify_signature": False})["iss"]
            jwt.decode(
                bearer,
                self.service_accounts[issuer],
                algorithms=["RS256"],
                options={"verify_aud": False},
            )
        except (jwt.PyJWTError, KeyError):
            return False
        return True

    def service_account_key(self, directory: Path) -> Path:
        """A service-account key file (for GOOGLE_APPLICATION_CREDENTIALS) this fake trusts."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.service_accounts[SERVICE_ACCOUNT] = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        path = directory / "gce-key.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": self.project,
                    "private_key_id": "k1",
                    "private_key": pem,
                    "client_email": SERVICE_ACCOUNT,
                    "client_id": "1",
                    "token_uri": f"{self.endpoint}/token",
                }
            )
        )
        path.chmod(0o600)
        return path

    # --- resources ----------------------------------------------------------------------

    def link(self, path: str) -> str:
        return f"https://www.googleapis.com/compute/v1/projects/{self.project}/{path}"

    def status(self, instance: dict[str, Any]) -> str:
        if instance["status"] == "PROVISIONING" and (
            time.monotonic() - instance["_created"] >= self.boot_seconds
        ):
            instance["status"] = "RUNNING"
        return str(instance["status"])

    def usage(self) -> dict[str, float]:
        used = dict.fromkeys(self.limits, 0.0)
        for (zone, _), instance in self.instances.items():
            if self.zones.get(zone) != self.region or self.status(instance) == "TERMINATED":
                continue
            for metric, amount in instance["_quota"].items():
                used[metric] = used.get(metric, 0.0) + amount
        return used

    def gpus_in_use(self) -> float:
        return self._in_use(lambda metric: metric.endswith("_GPUS"))

    def cpus_in_use(self) -> float:
        return self._in_use(lambda metric: metric == "CPUS" or metric.endswith("_CPUS"))

    def _in_use(self, counted: Any) -> float:
        return sum(
            amount
            for instance in self.instances.values()
            if self.status(instance) != "TERMINATED"
            for metric, amount in instance["_quota"].items()
            if counted(metric)
        )

    def quota_of(
        self,
        machine_type: str,
        accelerators: list[dict[str, Any]],
        disk_type: str = "pd-standard",
        disk_gb: float = 10.0,
        addresses: int = 1,
    ) -> dict[str, float]:
        cpus, built_in, count = MACHINE_TYPES[machine_type]
        family = machine_type.split("-")[0]
        charge = {CPU_METRICS.get(family, "CPUS"): float(cpus)}
        if addresses:
            charge["IN_USE_ADDRESSES"] = float(addresses)
        if disk_type in SSD_DISKS:
            charge["SSD_TOTAL_GB"] = disk_gb
        elif disk_type == "pd-standard":
            charge["DISKS_TOTAL_GB"] = disk_gb
        gpus = [(built_in, count)] if built_in else []
        gpus += [
            (str(a["acceleratorType"]).rpartition("/")[2], int(a.get("acceleratorCount", 1)))
            for a in accelerators
        ]
        for kind, amount in gpus:
            metric = GPU_METRICS.get(str(kind), f"{str(kind).upper().replace('-', '_')}_GPUS")
            charge[metric] = charge.get(metric, 0.0) + amount
        return charge

    def operation(
        self, scope: str, kind: str, target: str, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A finished operation (``status: DONE`` once read back; the insert's answer says
        RUNNING, as the real one usually does)."""
        name = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(8)}"
        record: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(next(self._ids)),
            "name": name,
            "operationType": kind,
            "targetLink": target,
            "status": "DONE",
            "progress": 100,
            "insertTime": _now(),
            "selfLink": self.link(f"{scope}/operations/{name}"),
        }
        if scope.startswith("zones/"):
            record["zone"] = self.link(scope)
        if error:
            record["error"] = {"errors": [error]}
            record["httpErrorStatusCode"] = 503 if "RESOURCE_POOL" in error["code"] else 403
            record["httpErrorMessage"] = "SERVICE UNAVAILABLE"
        self.operations[name] = record
        return {**record, "status": "RUNNING", "progress": 0}

    def insert_instance(self, zone: str, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name", ""))
        _check_name(name)
        _check_labels(body.get("labels", {}))
        kind = str(body.get("machineType", "")).rpartition("/")[2]
        if kind not in MACHINE_TYPES:
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'resource.machineType': '{body.get('machineType')}'. "
                f"Machine type with name '{kind}' does not exist in zone '{zone}'.",
            )
        accelerators = list(body.get("guestAccelerators", []))
        family = kind.split("-")[0]
        if accelerators and family != "n1":
            gpu = str(accelerators[0].get("acceleratorType", "")).rpartition("/")[2]
            raise ApiError(
                400,
                "badRequest",
                f"Invalid resource usage: '[{kind}, {gpu}] features are not compatible for "
                "creating instance.'.",
            )
        for accelerator in accelerators:
            gpu = str(accelerator.get("acceleratorType", "")).rpartition("/")[2]
            if gpu not in self.accelerators[zone]:
                raise ApiError(
                    400,
                    "invalid",
                    "Invalid value for field 'resource.guestAccelerators[0].acceleratorType': "
                    f"'{accelerator.get('acceleratorType')}'. Accelerator type '{gpu}' does "
                    f"not exist in zone '{zone}'.",
                )
        if (accelerators or MACHINE_TYPES[kind][1]) and body.get("scheduling", {}).get(
            "onHostMaintenance"
        ) != "TERMINATE":
            raise ApiError(
                400,
                "badRequest",
                "Invalid resource usage: 'Instances with guest accelerators do not support "
                "live migration.'.",
            )
        disks = list(body.get("disks", []))
        boot = next((disk for disk in disks if disk.get("boot")), None)
        if boot is None:
            raise ApiError(400, "required", "Required field 'resource.disks' not specified")
        params = boot.get("initializeParams", {})
        self.image(str(params.get("sourceImage", "")))
        _check_labels(params.get("labels", {}))
        disk_type = str(params.get("diskType") or "pd-standard").rpartition("/")[2]
        if disk_type in REFUSED_DISKS.get(family, set()):
            raise ApiError(
                400,
                "invalid",
                "Invalid value for field 'resource.disks[0].initializeParams.diskType': "
                f"'{params.get('diskType', '')}'. {disk_type} disk type cannot be used by "
                f"{kind} machine type.",
            )
        interfaces = list(body.get("networkInterfaces", [])) or [{}]
        for interface in interfaces:
            if not self.default_network or not str(
                interface.get("network", "global/networks/default")
            ).endswith("global/networks/default"):
                raise ApiError(
                    400,
                    "invalid",
                    f"Invalid value for field 'resource.networkInterfaces[0].network': "
                    f"'{interface.get('network')}'. The referenced network resource cannot "
                    "be found.",
                )
        target = self.link(f"zones/{zone}/instances/{name}")
        if (zone, name) in self.instances:
            raise ApiError(
                409,
                "alreadyExists",
                f"The resource 'projects/{self.project}/zones/{zone}/"
                f"instances/{name}' already exists",
            )
        self.inserts.append((zone, kind))
        stockout = (
            f"The zone 'projects/{self.project}/zones/{zone}' does not have enough resources "
            "available to fulfill the request.  Try a different zone, or try again later."
        )
        if (zone, None) in self.full_at_insert or (zone, kind) in self.full_at_insert:
            # The other form Compute Engine answers a stockout in: the insert call itself.
            raise ApiError(503, "ZONE_RESOURCE_POOL_EXHAUSTED", stockout)
        if (zone, None) in self.full or (zone, kind) in self.full:
            return self.operation(
                f"zones/{zone}",
                "insert",
                target,
                {
                    "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                    "message": f"The zone 'projects/{self.project}/zones/{zone}' does not have "
                    "enough resources available to fulfill the request.  Try a different "
                    "zone, or try again later.",
                },
            )
        addresses = sum(
            len(interface.get("accessConfigs", []))
            for interface in body.get("networkInterfaces", [])
        )
        charge = self.quota_of(
            kind, accelerators, disk_type, float(params.get("diskSizeGb", 10)), addresses
        )
        cpus = sum(
            amount
            for metric, amount in charge.items()
            if metric == "CPUS" or metric.endswith("_CPUS")
        )
        if self.cpus_in_use() + cpus > self.cpus_all_regions:
            return self.operation(
                f"zones/{zone}",
                "insert",
                target,
                {
                    "code": "QUOTA_EXCEEDED",
                    "message": "Quota 'CPUS_ALL_REGIONS' exceeded.  Limit: "
                    f"{self.cpus_all_regions} globally.",
                },
            )
        gpus = sum(amount for metric, amount in charge.items() if metric.endswith("_GPUS"))
        if gpus and self.gpus_in_use() + gpus > self.gpus_all_regions:
            return self.operation(
                f"zones/{zone}",
                "insert",
                target,
                {
                    "code": "QUOTA_EXCEEDED",
                    "message": "Quota 'GPUS_ALL_REGIONS' exceeded.  Limit: "
                    f"{self.gpus_all_regions} globally.",
                },
            )
        if self.zones[zone] == self.region:
            used = self.usage()
            for metric, amount in charge.items():
                limit = self.limits.get(metric, 0.0)
                if used.get(metric, 0.0) + amount > limit:
                    return self.operation(
                        f"zones/{zone}",
                        "insert",
                        target,
                        {
                            "code": "QUOTA_EXCEEDED",
                            "message": f"Quota '{metric}' exceeded.  Limit: {limit} in region "
                            f"{self.region}.",
                        },
                    )
        number = next(self._addresses)
        disk_name = str(boot.get("deviceName") or name)
        disk_link = self.link(f"zones/{zone}/disks/{disk_name}")
        self.disks[(zone, disk_name)] = {
            "kind": "compute#disk",
            "id": str(next(self._ids)),
            "name": disk_name,
            "zone": self.link(f"zones/{zone}"),
            "sizeGb": str(params.get("diskSizeGb", 10)),
            "type": self.link(f"zones/{zone}/diskTypes/{disk_type}"),
            "sourceImage": params.get("sourceImage"),
            "labels": dict(params.get("labels", {})),
            "users": [target],
            "selfLink": disk_link,
            "status": "READY",
        }
        self.instances[(zone, name)] = {
            "kind": "compute#instance",
            "id": str(next(self._ids)),
            "creationTimestamp": _now(),
            "name": name,
            "machineType": self.link(f"zones/{zone}/machineTypes/{kind}"),
            "status": "PROVISIONING",
            "zone": self.link(f"zones/{zone}"),
            "labels": dict(body.get("labels", {})),
            "tags": body.get("tags", {}),
            "metadata": body.get("metadata", {}),
            "guestAccelerators": accelerators,
            "scheduling": body.get("scheduling", {}),
            "networkInterfaces": [
                {
                    "network": self.link("global/networks/default"),
                    "networkIP": f"10.128.{number // 250}.{number % 250 + 2}",
                    "name": "nic0",
                    "accessConfigs": [
                        {
                            "type": "ONE_TO_ONE_NAT",
                            "name": "External NAT",
                            "natIP": f"198.18.{number // 250}.{number % 250 + 2}",
                        }
                    ],
                }
            ],
            "disks": [
                {
                    "boot": True,
                    "autoDelete": bool(boot.get("autoDelete", True)),
                    "deviceName": disk_name,
                    "source": disk_link,
                    "diskSizeGb": str(params.get("diskSizeGb", 10)),
                }
            ],
            "selfLink": target,
            "_created": time.monotonic(),
            "_quota": charge,
        }
        return self.operation(f"zones/{zone}", "insert", target)

    def delete_instance(self, zone: str, name: str) -> dict[str, Any]:
        instance = self.instances.pop((zone, name), None)
        if instance is None:
            raise _not_found(f"projects/{self.project}/zones/{zone}/instances/{name}")
        for disk in instance["disks"]:
            key = (zone, disk["deviceName"])
            if disk["autoDelete"]:
                self.disks.pop(key, None)
            elif key in self.disks:
                self.disks[key]["users"] = []
        return self.operation(f"zones/{zone}", "delete", instance["selfLink"])

    def image(self, source: str) -> dict[str, Any]:
        found = re.search(r"projects/([^/]+)/global/images/(family/)?([^/]+)$", source)
        if found and found[1] == "ubuntu-os-cloud":
            family = found[3] if found[2] else None
            name = IMAGE_FAMILIES.get(found[3]) if family else found[3]
            if name in IMAGE_FAMILIES.values():
                family = family or next(f for f, n in IMAGE_FAMILIES.items() if n == name)
                return {
                    "kind": "compute#image",
                    "id": str(abs(hash(name)) % 10**18),
                    "name": name,
                    "family": family,
                    "diskSizeGb": "10",
                    "status": "READY",
                    "selfLink": "https://www.googleapis.com/compute/v1/projects/"
                    f"ubuntu-os-cloud/global/images/{name}",
                }
        raise ApiError(
            404 if found else 400,
            "notFound" if found else "invalid",
            f"The resource '{source}' was not found"
            if found
            else f"Invalid value for field 'image': '{source}'.",
        )

    def insert_firewall(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name", ""))
        _check_name(name)
        if not self.default_network or not str(
            body.get("network", "global/networks/default")
        ).endswith("global/networks/default"):
            raise ApiError(
                400, "invalid", "Invalid value for field 'resource.network'. Network not found."
            )
        self._check_firewall(body)
        if name in self.firewalls:
            raise ApiError(
                409,
                "alreadyExists",
                f"The resource 'projects/{self.project}/global/firewalls/{name}' already exists",
            )
        target = self.link(f"global/firewalls/{name}")
        self.firewalls[name] = {
            "kind": "compute#firewall",
            "id": str(next(self._ids)),
            "creationTimestamp": _now(),
            "network": self.link("global/networks/default"),
            "direction": "INGRESS",
            "priority": 1000,
            **body,
            "selfLink": target,
        }
        return self.operation("global", "insert", target)

    def _check_firewall(self, body: dict[str, Any]) -> None:
        ranges = list(body.get("sourceRanges", []))
        try:
            families = {ipaddress.ip_network(cidr, strict=False).version for cidr in ranges}
        except ValueError as exc:
            raise ApiError(
                400, "invalid", f"Invalid value for field 'resource.sourceRanges': {exc}"
            ) from None
        if len(families) > 1:
            raise ApiError(
                400,
                "invalid",
                "Invalid value for field 'resource.sourceRanges': IPv4 and IPv6 ranges "
                "cannot be mixed in one firewall rule.",
            )
        for rule in body.get("allowed", []):
            for port in rule.get("ports", []):
                if not re.fullmatch(r"\d{1,5}(-\d{1,5})?", str(port)):
                    raise ApiError(
                        400, "invalid", f"Invalid value for field 'resource.allowed': '{port}'"
                    )


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise ApiError(
            400,
            "invalid",
            f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
            "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19})'",
        )


def _check_labels(labels: dict[str, Any]) -> None:
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(str(key)) or not LABEL_VALUE.fullmatch(str(value)):
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'resource.labels': '{key}={value}'. Label keys and "
                "values can only contain lowercase letters, numeric characters, underscores "
                "and dashes.",
            )


def _not_found(resource: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{resource}' was not found")


FILTER_CLAUSE = re.compile(
    r"""\s*(\()?\s*([a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_-]+)*)\s*(=|!=)\s*"""
    r"""("(?:[^"\\]|\\.)*"|[^\s()"]+)\s*(?(1)\))\s*(?:AND\s+)?"""
)


def _matches(item: dict[str, Any], expression: str) -> bool:
    """Compute Engine's list filter as the kit uses it: ``FIELD = VALUE`` and ``FIELD !=
    VALUE`` clauses (VALUE bare or in double quotes; each clause alone or in parentheses),
    all to hold; FIELD ``name``, ``status`` or ``labels.KEY``. Anything else is refused as
    the real API refuses it (400 "Invalid list filter expression")."""
    position, clauses = 0, []
    while position < len(expression.rstrip()):
        found = FILTER_CLAUSE.match(expression, position)
        if not found or found.end() == position:
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'filter': '{expression}'. Invalid list filter "
                "expression.",
            )
        clauses.append(found.group(2, 3, 4))
        position = found.end()
    for field, operator, raw in clauses:
        wanted = json.loads(raw) if raw.startswith('"') else raw
        if field.startswith("labels."):
            value = item.get("labels", {}).get(field[7:])
        elif field in ("name", "status"):
            value = item.get(field)
        else:
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'filter': '{expression}'. Invalid list filter "
                "expression.",
            )
        if (value == wanted) != (operator == "="):
            return False
    return True


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if not key.startswith("_")}


def _handler(fake: GceServer) -> type[BaseHTTPRequestHandler]:
    routes: list[tuple[str, re.Pattern[str], str]] = [
        (method, re.compile(rf"{API}projects/(?P<project>[^/]+){pattern}"), name)
        for method, pattern, name in [
            ("GET", "", "get_project"),
            ("GET", r"/zones/(?P<zone>[^/]+)/instances", "list_instances"),
            ("POST", r"/zones/(?P<zone>[^/]+)/instances", "insert_instance"),
            ("GET", r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)", "get_instance"),
            ("DELETE", r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)", "delete_instance"),
            ("GET", r"/aggregated/instances", "aggregated_instances"),
            ("GET", r"/aggregated/disks", "aggregated_disks"),
            ("DELETE", r"/zones/(?P<zone>[^/]+)/disks/(?P<name>[^/]+)", "delete_disk"),
            ("GET", r"/zones/(?P<zone>[^/]+)/operations/(?P<name>[^/]+)", "get_operation"),
            ("POST", r"/zones/(?P<zone>[^/]+)/operations/(?P<name>[^/]+)/wait", "get_operation"),
            ("GET", r"/global/operations/(?P<name>[^/]+)", "get_operation"),
            ("POST", r"/global/operations/(?P<name>[^/]+)/wait", "get_operation"),
            ("GET", r"/global/firewalls", "list_firewalls"),
            ("POST", r"/global/firewalls", "insert_firewall"),
            ("GET", r"/global/firewalls/(?P<name>[^/]+)", "get_firewall"),
            ("PATCH", r"/global/firewalls/(?P<name>[^/]+)", "patch_firewall"),
            ("DELETE", r"/global/firewalls/(?P<name>[^/]+)", "delete_firewall"),
            ("GET", r"/regions/(?P<region>[^/]+)", "get_region"),
            ("GET", r"/global/networks/(?P<name>[^/]+)", "get_network"),
            ("GET", r"/zones/(?P<zone>[^/]+)/machineTypes/(?P<name>[^/]+)", "get_machine_type"),
            (
                "GET",
                r"/zones/(?P<zone>[^/]+)/acceleratorTypes/(?P<name>[^/]+)",
                "get_accelerator_type",
            ),
            ("GET", r"/global/images/family/(?P<name>[^/]+)", "get_image_family"),
            ("GET", r"/global/images/(?P<name>[^/]+)", "get_image"),
        ]
    ]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, error: ApiError) -> None:
            domain = "usageLimits" if error.reason == "rateLimitExceeded" else "global"
            self._send(
                error.status,
                {
                    "error": {
                        "code": error.status,
                        "message": error.message,
                        "errors": [
                            {"message": error.message, "domain": domain, "reason": error.reason}
                        ],
                    }
                },
            )

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if method == "POST" and url.path == "/token":
                return self._token(raw)
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if not fake.authorised(bearer):
                return self._error(
                    ApiError(
                        401,
                        "authError",
                        "Request had invalid authentication credentials. Expected OAuth 2 "
                        "access token, login cookie or other valid authentication credential.",
                    )
                )
            for verb, pattern, route in routes:
                match = pattern.fullmatch(url.path)
                if verb == method and match:
                    name = route
                    break
            else:
                return self._error(ApiError(404, "notFound", f"Not Found: {url.path}"))
            with fake.lock:
                fake.calls.append(f"{method} {name}")
                if fake.throttle > 0:
                    fake.throttle -= 1
                    fake.throttled += 1
                    reason, _, words = FAILURES[fake.throttle_status]
                    return self._error(ApiError(fake.throttle_status, reason, words))
                try:
                    params = match.groupdict()
                    if params["project"] != fake.project and name not in (
                        "get_image_family",
                        "get_image",
                    ):
                        raise _not_found(f"projects/{params['project']}")
                    if "zone" in params and params["zone"] not in fake.zones:
                        raise ApiError(
                            400,
                            "invalid",
                            f"Invalid value for field 'zone': '{params['zone']}'. Unknown zone.",
                        )
                    body = json.loads(raw) if raw else {}
                    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                    answer = getattr(self, name)(body, query, **params)
                except ApiError as error:
                    return self._error(error)
            if name == "get_operation" and method == "POST":
                time.sleep(0.01)  # wait: the operation is done by now
            return self._send(200, answer)

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def do_PATCH(self) -> None:
            self._dispatch("PATCH")

        def _token(self, raw: bytes) -> None:
            form = parse_qs(raw.decode())
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                return self._send(400, {"error": "unsupported_grant_type"})
            try:
                claims = jwt.decode(form["assertion"][0], options={"verify_signature": False})
                key = fake.service_accounts[claims["iss"]]
                jwt.decode(form["assertion"][0], key, algorithms=["RS256"], audience=claims["aud"])
            except (jwt.PyJWTError, KeyError):
                return self._send(400, {"error": "invalid_grant", "error_description": "bad JWT"})
            return self._send(
                200,
                {"access_token": fake.issue_token(), "expires_in": 3599, "token_type": "Bearer"},
            )

        # --- instances -------------------------------------------------------------------

        def insert_instance(self, body: dict, _query: dict, project: str, zone: str) -> dict:
            answer = fake.insert_instance(zone, body)
            if fake.lose_answers > 0:  # it happened; the answer is lost
                fake.lose_answers -= 1
                raise ApiError(503, "backendError", "Backend Error")
            return answer

        def get_instance(self, _body: dict, _query: dict, project: str, zone: str, name: str):
            instance = fake.instances.get((zone, name))
            if instance is None:
                raise _not_found(f"projects/{project}/zones/{zone}/instances/{name}")
            fake.status(instance)
            return _public(instance)

        def delete_instance(self, _body: dict, _query: dict, project: str, zone: str, name: str):
            return fake.delete_instance(zone, name)

        def list_instances(self, _body: dict, query: dict, project: str, zone: str) -> dict:
            items = []
            for (where, _), instance in sorted(fake.instances.items()):
                fake.status(instance)
                if where == zone and _matches(instance, query.get("filter", "")):
                    items.append(_public(instance))
            return {"kind": "compute#instanceList", "items": items}

        def _aggregated(self, store: dict, plural: str, query: dict) -> dict[str, Any]:
            scoped: dict[str, dict[str, Any]] = {}
            for zone in fake.zones:
                found = [
                    _public(item)
                    for (where, _), item in sorted(store.items())
                    if where == zone and _matches(item, query.get("filter", ""))
                ]
                scoped[f"zones/{zone}"] = (
                    {plural: found}
                    if found
                    else {
                        "warning": {
                            "code": "NO_RESULTS_ON_PAGE",
                            "message": "There are no results for scope 'zones/"
                            f"{zone}' on this page.",
                        }
                    }
                )
            return {"kind": f"compute#{plural[:-1]}AggregatedList", "items": scoped}

        def aggregated_instances(self, _body: dict, query: dict, project: str) -> dict:
            for instance in fake.instances.values():
                fake.status(instance)
            return self._aggregated(fake.instances, "instances", query)

        def aggregated_disks(self, _body: dict, query: dict, project: str) -> dict:
            return self._aggregated(fake.disks, "disks", query)

        def delete_disk(self, _body: dict, _query: dict, project: str, zone: str, name: str):
            disk = fake.disks.get((zone, name))
            if disk is None:
                raise _not_found(f"projects/{project}/zones/{zone}/disks/{name}")
            if disk["users"]:
                raise ApiError(
                    400,
                    "resourceInUseByAnotherResource",
                    f"The disk resource '{disk['selfLink']}' is already being used by "
                    f"'{disk['users'][0]}'",
                )
            del fake.disks[(zone, name)]
            return fake.operation(f"zones/{zone}", "delete", disk["selfLink"])

        def get_operation(self, _body: dict, _query: dict, project: str, name: str, **_: str):
            operation = fake.operations.get(name)
            if operation is None:
                raise _not_found(f"projects/{project}/operations/{name}")
            return operation

        # --- firewalls -------------------------------------------------------------------

        def insert_firewall(self, body: dict, _query: dict, project: str) -> dict:
            return fake.insert_firewall(body)

        def get_firewall(self, _body: dict, _query: dict, project: str, name: str) -> dict:
            if name not in fake.firewalls:
                raise _not_found(f"projects/{project}/global/firewalls/{name}")
            return fake.firewalls[name]

        def list_firewalls(self, _body: dict, query: dict, project: str) -> dict:
            items = [r for r in fake.firewalls.values() if _matches(r, query.get("filter", ""))]
            return {"kind": "compute#firewallList", "items": items}

        def patch_firewall(self, body: dict, _query: dict, project: str, name: str) -> dict:
            rule = self.get_firewall(body, _query, project, name)
            fake._check_firewall({**rule, **body})
            rule.update({k: v for k, v in body.items() if k != "name"})
            return fake.operation("global", "patch", rule["selfLink"])

        def delete_firewall(self, _body: dict, _query: dict, project: str, name: str) -> dict:
            rule = self.get_firewall(_body, _query, project, name)
            del fake.firewalls[name]
            return fake.operation("global", "delete", rule["selfLink"])

        # --- what the plan reads ---------------------------------------------------------

        def get_project(self, _body: dict, _query: dict, project: str) -> dict:
            return {
                "kind": "compute#project",
                "name": project,
                "quotas": [
                    {
                        "metric": "GPUS_ALL_REGIONS",
                        "limit": fake.gpus_all_regions,
                        "usage": fake.gpus_in_use(),
                    },
                    {
                        "metric": "CPUS_ALL_REGIONS",
                        "limit": fake.cpus_all_regions,
                        "usage": fake.cpus_in_use(),
                    },
                    {"metric": "FIREWALLS", "limit": 200.0, "usage": len(fake.firewalls)},
                ],
                "selfLink": fake.link("")[:-1],
            }

        def get_network(self, _body: dict, _query: dict, project: str, name: str) -> dict:
            if name != "default" or not fake.default_network:
                raise _not_found(f"projects/{project}/global/networks/{name}")
            return {
                "kind": "compute#network",
                "id": "4700000000000000001",
                "name": name,
                "autoCreateSubnetworks": True,
                "routingConfig": {"routingMode": "REGIONAL"},
                "selfLink": fake.link(f"global/networks/{name}"),
            }

        def get_region(self, _body: dict, _query: dict, project: str, region: str) -> dict:
            if region not in set(fake.zones.values()):
                raise _not_found(f"projects/{project}/regions/{region}")
            used = fake.usage() if region == fake.region else {}
            limits = fake.limits if region == fake.region else NEW_PROJECT_LIMITS
            return {
                "kind": "compute#region",
                "name": region,
                "status": "UP",
                "zones": [fake.link(f"zones/{z}") for z, r in fake.zones.items() if r == region],
                "quotas": [
                    {"metric": metric, "limit": limit, "usage": used.get(metric, 0.0)}
                    for metric, limit in sorted(limits.items())
                ],
                "selfLink": fake.link(f"regions/{region}"),
            }

        def get_machine_type(self, _body: dict, _query: dict, project: str, zone: str, name: str):
            if name not in MACHINE_TYPES:
                raise _not_found(f"projects/{project}/zones/{zone}/machineTypes/{name}")
            cpus, gpu, count = MACHINE_TYPES[name]
            answer: dict[str, Any] = {
                "kind": "compute#machineType",
                "name": name,
                "guestCpus": cpus,
                "memoryMb": cpus * 3840,
                "zone": zone,
                "selfLink": fake.link(f"zones/{zone}/machineTypes/{name}"),
            }
            if gpu:
                if gpu not in fake.accelerators[zone]:
                    raise _not_found(f"projects/{project}/zones/{zone}/machineTypes/{name}")
                answer["accelerators"] = [
                    {"guestAcceleratorType": gpu, "guestAcceleratorCount": count}
                ]
            return answer

        def get_accelerator_type(
            self, _body: dict, _query: dict, project: str, zone: str, name: str
        ) -> dict:
            if name not in fake.accelerators[zone]:
                raise _not_found(f"projects/{project}/zones/{zone}/acceleratorTypes/{name}")
            return {
                "kind": "compute#acceleratorType",
                "name": name,
                "zone": fake.link(f"zones/{zone}"),
                "maximumCardsPerInstance": 4,
                "selfLink": fake.link(f"zones/{zone}/acceleratorTypes/{name}"),
            }

        def get_image_family(self, _body: dict, _query: dict, project: str, name: str) -> dict:
            return fake.image(f"projects/{project}/global/images/family/{name}")

        def get_image(self, _body: dict, _query: dict, project: str, name: str) -> dict:
            return fake.image(f"projects/{project}/global/images/{name}")

    return Handler
