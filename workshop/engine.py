"""The local Docker engine, reached through the Docker SDK."""

from __future__ import annotations

import docker
import docker.errors

from workshop.errors import WorkshopError


def docker_client() -> docker.DockerClient:
    """A client for the engine that ``DOCKER_HOST`` (or the default socket) names."""
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:160]
        raise WorkshopError(
            f"no Docker engine answers ({reason}): run 'make setup', which starts dockerd "
            "and logs to /var/log/dockerd.log"
        ) from None
    return client
