"""Start a lab's service container on a free local port and wait for its health URL."""

from __future__ import annotations

import time

import requests


def start(engine, image, *, port: int = 8000, health: str = "/health", environment=None):
    """(container, base URL) once ``health`` answers; the container is removed on failure."""
    container = engine.containers.run(
        image.id,
        detach=True,
        ports={f"{port}/tcp": ("127.0.0.1", None)},
        environment=environment or {},
        labels={"org.workshop.test": "labs"},
    )
    container.reload()
    url = f"http://127.0.0.1:{container.ports[f'{port}/tcp'][0]['HostPort']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}{health}", timeout=2).ok:
                return container, url
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    logs = container.logs().decode()[-800:]
    container.remove(force=True)
    raise AssertionError(f"{image.tags or image.id} never answered {health}: {logs}")
