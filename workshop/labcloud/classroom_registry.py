"""The cohort's classroom registry: a real ``docker-registry`` (CNCF distribution) in a
container, TLS from the cohort's CA, htpasswd logins; trusted by this machine's engine,
seeded with the hello image, untagged on ``down``."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import time
from pathlib import Path

import docker
import docker.errors
import yaml
from docker.models.containers import Container
from docker.types import EndpointConfig

from workshop import state
from workshop.errors import WorkshopError
from workshop.labcloud import pki
from workshop.labcloud.spec import (
    LABEL_REGISTRY_ADDRESS,
    CohortPaths,
    RegistryStatus,
    cohort_filter,
    cohort_labels,
    resource_name,
)
from workshop.labcloud.vm import image_user_uid, tar_of

REGISTRY_PORT = 5000
REGISTRY_USER = "instructor"
HELLO_REPOSITORY = "classroom/hello"
HELLO_TAG = "1"
DOCKER_CERTS_DIR = Path(os.environ.get("WORKSHOP_DOCKER_CERTS_DIR", "/etc/docker/certs.d"))


def registry_ip(subnet: ipaddress.IPv4Network) -> str:
    return str(subnet.network_address + 2)


def _registry_config() -> str:
    config = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": "/var/lib/docker-registry"},
            "delete": {"enabled": True},
        },
        "http": {
            "addr": f":{REGISTRY_PORT}",
            "tls": {
                "certificate": "/etc/docker/registry/tls/registry.crt",
                "key": "/etc/docker/registry/tls/registry.key",
            },
            "debug": {"addr": "127.0.0.1:5001"},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "auth": {
            "htpasswd": {"realm": "classroom-registry", "path": "/etc/docker/registry/htpasswd"}
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    return yaml.safe_dump(config, sort_keys=False)


def ensure_registry(
    client: docker.DockerClient,
    cohort: str,
    files: CohortPaths,
    network: str,
    subnet: ipaddress.IPv4Network,
    image: str,
    logins_changed: bool,
) -> Container:
    name = resource_name(cohort, "registry")
    ip = registry_ip(subnet)
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        container = None
    # By membership: the image may carry other tags too (a push keeps its target tag).
    if container is not None and image not in container.image.tags:
        # The registry image changed (a new recipe): replace the container, keep the volume.
        container.remove(force=True)
        container = None
    if container is None:
        if not files.registry_cert.exists() or not pki.certificate_covers(
            files.registry_cert.read_bytes(), ip
        ):
            ca = pki.KeyPair(files.ca_key.read_bytes(), files.ca_cert.read_bytes())
            cert = pki.server_certificate(ca, ["registry", "localhost"], [ip, "127.0.0.1"])
            state.write_file(files.registry_key, cert.private, secret=True)
            state.write_file(files.registry_cert, cert.public, secret=True)
        volume = resource_name(cohort, "registry-data")
        if not client.volumes.list(filters={"name": volume}):
            client.volumes.create(volume, labels=cohort_labels(cohort, "registry-data"))
        container = client.containers.create(
            image,
            name=name,
            hostname="registry",
            labels={
                **cohort_labels(cohort, "registry"),
                LABEL_REGISTRY_ADDRESS: f"{ip}:{REGISTRY_PORT}",
            },
            volumes={volume: {"bind": "/var/lib/docker-registry", "mode": "rw"}},
            restart_policy={"Name": "unless-stopped"},
            network=network,
            networking_config={
                network: EndpointConfig("1.41", aliases=["registry"], ipv4_address=ip)
            },
            detach=True,
        )
        owner = image_user_uid(client, image)
        container.put_archive(
            "/etc/docker/registry",
            tar_of(
                {
                    "config.yml": (_registry_config().encode(), 0o640, owner),
                    "htpasswd": (files.htpasswd.read_bytes(), 0o600, owner),
                    "tls/registry.crt": (files.registry_cert.read_bytes(), 0o644, owner),
                    "tls/registry.key": (files.registry_key.read_bytes(), 0o600, owner),
                }
            ),
        )
    elif logins_changed:
        # The registry reads htpasswd when it starts: copy the new file in and restart.
        owner = image_user_uid(client, image)
        container.put_archive(
            "/etc/docker/registry",
            tar_of({"htpasswd": (files.htpasswd.read_bytes(), 0o600, owner)}),
        )
        container.restart(timeout=10)
    if container.status != "running":
        container.start()
    return container


def registry_status(client: docker.DockerClient, cohort: str) -> RegistryStatus | None:
    found = client.containers.list(all=True, filters=cohort_filter(cohort, "registry"))
    if not found:
        return None
    container = found[0]
    health = container.attrs["State"].get("Health", {}).get("Status", container.status)
    if container.status != "running":
        health = container.status
    return RegistryStatus(container.labels[LABEL_REGISTRY_ADDRESS], container.short_id, health)


def wait_registry_healthy(
    client: docker.DockerClient, cohort: str, address: str, timeout: float = 60
) -> RegistryStatus | None:
    deadline = time.monotonic() + timeout
    while True:
        status = registry_status(client, cohort)
        if status is None or status.health in ("healthy", "unhealthy", "exited"):
            return status
        if time.monotonic() >= deadline:
            return status
        time.sleep(1)


def trust_on_host(address: str, ca_cert: bytes) -> None:
    """Let the host's Docker engine verify the registry: certs.d is read per connection."""
    try:
        state.write_file(DOCKER_CERTS_DIR / address / "ca.crt", ca_cert)
    except PermissionError:
        raise WorkshopError(
            f"cannot write {DOCKER_CERTS_DIR / address}: run as root, or set "
            "WORKSHOP_DOCKER_CERTS_DIR to the engine's certs.d directory"
        ) from None


def seed_image(
    client: docker.DockerClient,
    files: CohortPaths,
    address: str,
    image: str,
    repository: str,
    tag: str,
) -> str:
    """Push a locally built image to the classroom registry; return its reference by digest.

    Pushing is idempotent (the registry already has every layer the second time), and
    the digest is what provisioning preloads, so VMs never pull a moving tag.
    """
    credentials = json.loads(files.registry_credentials.read_text())
    target = f"{address}/{repository}"
    client.images.get(image).tag(target, tag)
    digest = ""
    try:
        stream = client.api.push(target, tag=tag, stream=True, decode=True, auth_config=credentials)
        for event in stream:
            if "error" in event:
                raise WorkshopError(
                    f"pushing {target}:{tag} to the classroom registry failed: "
                    f"{event['error']}; check 'workshop cloud status --cohort {files.root.name}'"
                )
            digest = event.get("aux", {}).get("Digest", digest)
    finally:
        # The push tag only names the upload; leaving it would pile one up per cohort.
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(f"{target}:{tag}", noprune=True)
    return f"{target}:{tag}@{digest}"


def untag_registry(client: docker.DockerClient, address: str) -> list[str]:
    """Remove this engine's tags of images pushed to ``address`` (the images stay)."""
    removed = []
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{address}/"):
                with contextlib.suppress(docker.errors.APIError):
                    client.api.remove_image(tag, noprune=True)
                    removed.append(tag)
    return removed
