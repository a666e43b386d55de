"""Activity 3: the Compose stack brought up with `docker compose up --wait`, a prediction
through the gateway, the Redis cache, the PostgreSQL log, and three model replicas."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import skimage.data
from PIL import Image

from tests.fakes.distribution import free_port
from workshop.labs import bases, catalog

LAB = catalog.load("05-compose-stack")
COMPOSE = str(Path(sys.executable).parent / "docker-compose")


def jpeg(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stack(engine, tmp_path_factory):
    tags = {image.name: catalog.build(engine, LAB, image)[0] for image in LAB.images}
    for name in ("redis", "postgres"):
        bases.build_base(engine, bases.BASES[name])
    secrets_file = tmp_path_factory.mktemp("compose") / "secrets.env"
    secrets_file.write_text(
        f"POSTGRES_USER=ml\nPOSTGRES_PASSWORD={secrets.token_urlsafe(16)}\n"
        "POSTGRES_DB=predictions\n"
    )
    secrets_file.chmod(0o600)
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_IMAGE": tags["gateway"],
        "MODEL_IMAGE": tags["model"],
        "REDIS_IMAGE": bases.build_arg("redis"),
        "POSTGRES_IMAGE": bases.build_arg("postgres"),
        "SECRETS_FILE": str(secrets_file),
        "GATEWAY_PORT": str(port),
    }
    project = f"ml-stack-{secrets.token_hex(3)}"

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [COMPOSE, "-p", project, "-f", str(LAB.directory / "compose.yaml"), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    compose("up", "--wait", "--no-build")
    yield {"url": f"http://127.0.0.1:{port}", "compose": compose}
    compose("down", "-v", "--remove-orphans", check=False)


def test_every_service_is_healthy(stack):
    health = requests.get(f"{stack['url']}/health", timeout=10)
    assert health.json() == {"status": "ok", "model": "efficientnet_lite0"}
    states = stack["compose"]("ps", "--format", "{{.Service}} {{.Health}}").stdout
    for service in ("gateway", "model", "redis", "db"):
        assert f"{service} healthy" in states, states


def test_a_prediction_flows_through_then_comes_from_redis_and_is_logged(stack):
    cat = jpeg(skimage.data.chelsea())
    first = requests.post(f"{stack['url']}/predict", files={"file": ("cat.jpg", cat)}, timeout=30)
    assert first.status_code == 200, first.text
    assert first.headers["X-Cache"] == "miss"
    assert "cat" in first.json()["predictions"][0]["label"]
    second = requests.post(f"{stack['url']}/predict", files={"file": ("cat.jpg", cat)}, timeout=30)
    assert second.headers["X-Cache"] == "hit"
    assert second.json()["predictions"] == first.json()["predictions"]

    digest = first.json()["image_sha256"]
    rows = stack["compose"](
        "exec",
        "-T",
        "db",
        "psql",
        "-U",
        "ml",
        "-d",
        "predictions",
        "-At",
        "-c",
        f"SELECT cache FROM predictions WHERE image_sha256 = '{digest}' ORDER BY id",
    ).stdout.split()
    assert rows == ["miss", "hit"]
    cached = stack["compose"]("exec", "-T", "redis", "redis-cli", "exists", f"prediction:{digest}")
    assert cached.stdout.strip() == "1"


def test_three_model_replicas_share_the_requests(stack):
    stack["compose"]("up", "--wait", "--no-build", "--scale", "model=3")
    replicas = stack["compose"]("ps", "-q", "model").stdout.split()
    assert len(replicas) == 3
    rng = np.random.default_rng(7)
    instances = set()
    for _ in range(18):  # new images every time: no cache hit, each call reaches a model
        noise = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
        answer = requests.post(
            f"{stack['url']}/predict", files={"file": ("n.jpg", jpeg(noise))}, timeout=30
        )
        assert answer.headers["X-Cache"] == "miss"
        instances.add(answer.headers["X-Model-Instance"])
    assert len(instances) > 1, instances
