"""The cohort's Docker network: one /24 of its own out of the lab cloud's pool."""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors

from workshop.errors import WorkshopError
from workshop.labcloud.spec import (
    cohort_filter,
    cohort_labels,
    resource_name,
)

# Lab cloud subnets come out of this pool, one /24 per cohort.
_SUBNET_TRIES = 5
_SUBNET_POOL = ipaddress.IPv4Network(os.environ.get("WORKSHOP_LABCLOUD_POOL", "10.213.0.0/16"))
ROUTES = Path("/proc/net/route")


def ensure_network(client: docker.DockerClient, cohort: str) -> tuple[Any, ipaddress.IPv4Network]:
    found = client.networks.list(filters=cohort_filter(cohort, "network"))
    if found:
        network = client.networks.get(found[0].id)
        subnet = network.attrs["IPAM"]["Config"][0]["Subnet"]
        return network, ipaddress.IPv4Network(subnet)
    # Another cohort's `up` on this engine may take the same free /24 between our look and
    # our create: Docker refuses the second ("Pool overlaps"), so look again.
    for attempt in range(1, _SUBNET_TRIES + 1):
        subnet = _free_subnet(client)
        try:
            network = client.networks.create(
                resource_name(cohort, "net"),
                driver="bridge",
                ipam=docker.types.IPAMConfig(
                    pool_configs=[
                        docker.types.IPAMPool(
                            subnet=str(subnet), gateway=str(subnet.network_address + 1)
                        )
                    ]
                ),
                labels=cohort_labels(cohort, "network"),
            )
        except docker.errors.APIError as exc:
            if "overlaps" not in str(exc) or attempt == _SUBNET_TRIES:
                raise
            time.sleep(0.5 * attempt)
        else:
            return network, subnet
    raise AssertionError("the loop returns or raises")  # for mypy


def routed_networks(table: Path | None = None) -> list[ipaddress.IPv4Network]:
    """The networks this machine already routes (not the default route): another Docker
    engine's bridges (left behind by one that stopped), a VPN, the LAN. A /24 among them
    is not free, whatever this engine knows."""
    found = []
    try:
        lines = (table or ROUTES).read_text().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        # Destination and Mask are hex in the host's byte order.
        destination = ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(fields[1]), sys.byteorder))
        mask = ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(fields[7]), sys.byteorder))
        if int(mask):
            found.append(ipaddress.IPv4Network(f"{destination}/{mask}", strict=False))
    return found


def _free_subnet(client: docker.DockerClient) -> ipaddress.IPv4Network:
    taken = routed_networks()
    for network in client.networks.list():
        for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if "Subnet" in config and ":" not in config["Subnet"]:
                taken.append(ipaddress.IPv4Network(config["Subnet"]))
    for candidate in _SUBNET_POOL.subnets(new_prefix=24):
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise WorkshopError(
        f"no free /24 left in {_SUBNET_POOL} for a new cohort: take an old cohort down, "
        "or set WORKSHOP_LABCLOUD_POOL to another private range"
    )
