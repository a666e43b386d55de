"""Lesson 01: the README's commands, run with the docker CLI as a student would, against
the classifier image (built here; in class it comes from the classroom registry)."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import time

import pytest
import requests
import skimage.data
from PIL import Image

from tests.fakes.distribution import free_port
from tests.workshop.labs import work
from workshop.labs import catalog

LAB = catalog.load("01-hello-ml")


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def image(engine):
    lab_name, image_name = LAB.uses[0].split("/")
    source = catalog.load(lab_name)
    tag, _ = catalog.build(engine, source, source.image(image_name))
    return tag


def test_the_readme_commands_work(image):
    name = f"hello-ml-{secrets.token_hex(3)}"
    port = free_port()
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", image)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(url + LAB.health, timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert requests.get(url + LAB.health, timeout=5).json()["status"] == "ok"
        assert name in docker("ps", "--format", "{{.Names}}")

        buffer = io.BytesIO()
        Image.fromarray(skimage.data.chelsea()).save(buffer, format="JPEG")
        top = requests.post(
            f"{url}/predict", files={"file": ("cat.jpg", buffer.getvalue())}, timeout=30
        ).json()["predictions"][0]
        assert "cat" in top["label"]

        assert (
            "loaded"
            in docker("logs", name)
            + subprocess.run(
                ["docker", "logs", name], capture_output=True, text=True, check=False
            ).stderr
        )
        assert docker("exec", name, "id", "-u").strip() == "10001"
        assert "efficientnet_lite0.onnx" in docker("exec", name, "ls", "/app/model")
        docker("stop", name)
        state = json.loads(docker("inspect", name))[0]["State"]
        assert state["ExitCode"] == 0
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    assert name not in docker("ps", "-a", "--format", "{{.Names}}")


def test_the_lab_checks_pass_on_the_classroom_image(engine, tmp_path):
    copy = work.student_copy(LAB, tmp_path)
    assert (copy / "cat.jpg").exists()
    work.all_passed(work.run(engine, LAB, copy))
