"""Activity 1's reference solution, built and run on the local engine: real photographs
through the real model, size, user, and what `docker stop` does to a request in flight."""

from __future__ import annotations

import io
import threading
import time

import pytest
import requests
import skimage.data
from PIL import Image

from tests.workshop.labs import service as service_container
from workshop.labs import catalog

LAB = catalog.load("02-image-classifier")


def jpeg(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image(engine):
    tag, _ = catalog.build(engine, LAB, LAB.image("classifier"))
    return engine.images.get(tag)


def start(engine, image, **environment):
    return service_container.start(
        engine, image, health=LAB.health, environment={**LAB.environment, **environment}
    )


@pytest.fixture(scope="module")
def service(engine, image):
    container, url = start(engine, image)
    yield url
    container.remove(force=True)


def predict(url: str, data: bytes, name: str = "photo.jpg") -> requests.Response:
    return requests.post(f"{url}/predict", files={"file": (name, data)}, timeout=30)


def test_health_names_the_model(service):
    body = requests.get(f"{service}/health", timeout=5).json()
    assert body == {"status": "ok", "model": "efficientnet_lite0", "labels": 1000}


def test_a_cat_photograph_is_a_cat(service):
    response = predict(service, jpeg(skimage.data.chelsea()))
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 5
    assert "cat" in predictions[0]["label"]
    assert predictions[0]["probability"] > 0.2
    assert abs(sum(p["probability"] for p in predictions) - 1) < 0.2


def test_a_cup_of_coffee_is_a_cup_or_an_espresso(service):
    predictions = predict(service, jpeg(skimage.data.coffee())).json()["predictions"]
    labels = " | ".join(p["label"] for p in predictions)
    assert any(word in labels for word in ("cup", "espresso", "coffee mug")), labels


def test_a_file_that_is_not_an_image_is_refused_and_the_service_keeps_serving(service):
    response = predict(service, b"these are not the pixels you are looking for", "notes.txt")
    assert response.status_code == 415
    assert "notes.txt is not an image" in response.json()["detail"]
    assert predict(service, b"", "empty.jpg").status_code == 400
    assert predict(service, jpeg(skimage.data.chelsea())).status_code == 200


def test_image_size_within_the_course_target(image):
    spec = LAB.image("classifier")
    size_mb = image.attrs["Size"] / 1e6
    assert size_mb < spec.size_limit_mb, f"{size_mb:.0f} MB"


def test_runs_as_non_root_with_a_healthcheck_and_exec_form_cmd(engine, image):
    config = image.attrs["Config"]
    assert config["User"] not in ("", "0", "root", "0:0")
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert config["Cmd"] == ["python", "-m", "app"]
    uid = engine.containers.run(image.id, ["id", "-u"], remove=True).decode().strip()
    assert uid == "10001"


def test_docker_stop_lets_a_slow_request_finish_and_exits_zero(engine, image):
    container, url = start(engine, image, MAX_DELAY_MS="5000")
    outcome = {}

    def slow_request():
        response = requests.post(
            f"{url}/predict?delay_ms=3000",
            files={"file": ("cat.jpg", jpeg(skimage.data.chelsea()))},
            timeout=30,
        )
        outcome["status"] = response.status_code
        outcome["top1"] = response.json()["predictions"][0]["label"]

    try:
        caller = threading.Thread(target=slow_request)
        caller.start()
        time.sleep(1.0)  # the request is in flight, sleeping in the handler
        started = time.monotonic()
        container.stop(timeout=25)
        stopped_in = time.monotonic() - started
        caller.join(timeout=30)
        container.reload()
        assert outcome.get("status") == 200, outcome
        assert "cat" in outcome["top1"]
        assert container.attrs["State"]["ExitCode"] == 0
        assert stopped_in < 15, f"took {stopped_in:.1f}s: SIGTERM was not handled"
    finally:
        container.remove(force=True)
