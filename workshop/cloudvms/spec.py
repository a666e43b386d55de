"""The cohort file for VMs in a real cloud (``workshop cloud up --provider P --config F``).

One YAML file says where the cohort's VMs go and what they are: region, zones and
instance types in the order to try them, the image, the disk, the admin's SSH key, who may
reach SSH and the labs' ports, how long the class runs and what an hour costs. Mistakes
are one line naming the file and the key (``workshop.yamlfile``).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workshop import yamlfile
from workshop.errors import WorkshopError

UBUNTU = {"ubuntu-22.04": "22.04", "ubuntu-24.04": "24.04"}
# Every resource the kit makes carries this tag (label) with the cohort's name.
COHORT_TAG = "workshop-cohort"
STUDENT_TAG = "workshop-student"
EXPIRES_TAG = "workshop-expires"


class CloudCohortSpec(BaseModel):
    """``cohort.yml``: see README, "VMs in a cloud"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["aws", "gcp", "azure"]
    region: str = Field(min_length=1)
    zones: list[str] = Field(min_length=1)
    # Fallbacks in order: a capacity error moves to the next zone, then the next type.
    instance_types: list[str] = Field(min_length=1)
    # ubuntu-22.04 | ubuntu-24.04 | the cloud's own image id (an AMI, an image URL)
    image: str = "ubuntu-24.04"
    disk_gb: int = Field(default=100, ge=30, le=4000)
    admin_user: str = Field(default="ubuntu", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    ssh_public_key: Path
    # Who may reach port 22 and the labs' ports (the instructor's and students' networks).
    allow_from: list[str] = Field(min_length=1)
    lab_ports: list[int] = Field(default_factory=lambda: [8000, 8080])
    hours: float = Field(default=8.0, gt=0, le=24 * 31)
    # When the VMs should be gone (a tag on each; `down` removes them whatever it says).
    expires_at: datetime | None = None
    # USD per hour and VM, per instance type, for the estimate printed before creation.
    prices: dict[str, float] = Field(default_factory=dict)
    # The classroom registry the VMs pull from (host:port), and its CA when not public.
    classroom_registry_address: str | None = None
    classroom_registry_ca_file: Path | None = None
    # gcp: the project (default: the project of the credentials' standard chain), and
    # the GPU attached to each VM where the machine type has none built in (N1 + T4).
    project: str | None = None
    gpu_type: str | None = None  # e.g. nvidia-tesla-t4
    gpus_per_vm: int = Field(default=1, ge=1, le=16)
    # azure: the subscription (default: AZURE_SUBSCRIPTION_ID) and the resource group the
    # cohort's resources go in (default: workshop-<cohort>; `down` deletes what is tagged).
    subscription_id: str | None = None
    resource_group: str | None = None

    @field_validator("allow_from")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a network in CIDR form ({exc})") from None
        return value

    @field_validator("lab_ports")
    @classmethod
    def _ports(cls, value: list[int]) -> list[int]:
        bad = [port for port in value if not 1 <= port <= 65535 or port == 22]
        if bad:
            raise ValueError(f"{bad[0]} is not a lab port (1-65535; SSH's 22 is always open)")
        return value

    def ubuntu_release(self) -> str | None:
        return UBUNTU.get(self.image)

    def public_key(self) -> str:
        key = self.ssh_public_key.expanduser()
        try:
            text = key.read_text().strip()
        except OSError as exc:
            raise WorkshopError(
                f"ssh_public_key: cannot read {key} ({exc.strerror}): give the admin's "
                "public key (ssh-keygen -t ed25519 -f ~/.ssh/workshop makes one)"
            ) from None
        if not re.match(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-\S+) [A-Za-z0-9+/=]+", text):
            raise WorkshopError(f"ssh_public_key: {key} is not an OpenSSH public key")
        return text

    def public_key_kind(self) -> tuple[str, int]:
        """The admin key's algorithm and size in bits (an RSA key's modulus; 256 for
        ED25519, the curve's for ECDSA)."""
        kind, _, rest = self.public_key().partition(" ")
        if kind != "ssh-rsa":
            curve = re.search(r"nistp(\d+)", kind)
            return kind, int(curve.group(1)) if curve else 256
        blob = base64.b64decode(rest.split()[0])
        fields: list[bytes] = []
        while blob and len(fields) < 3:  # string "ssh-rsa", mpint e, mpint n
            size = int.from_bytes(blob[:4], "big")
            fields.append(blob[4 : 4 + size])
            blob = blob[4 + size :]
        modulus = fields[2].lstrip(b"\0") if len(fields) == 3 else b""
        return kind, len(modulus) * 8

    def price(self, instance_type: str) -> float | None:
        return self.prices.get(instance_type)


def load(path: Path) -> CloudCohortSpec:
    if not path.is_file():
        raise WorkshopError(
            f"{path}: no such cohort file: copy inventory/cloud-cohort.example.yml and fill it in"
        )
    return yamlfile.load_model(path, CloudCohortSpec)
