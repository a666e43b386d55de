"""The practical assessment's reference solution meets all seven requirements."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.fakes.distribution import free_port
from tests.workshop.labs import service
from workshop.labs import catalog

LAB = catalog.load("practical")
# The first wine of the UCI wine data set (cultivar class_0).
WINE = {
    "alcohol": 14.23,
    "malic_acid": 1.71,
    "ash": 2.43,
    "alcalinity_of_ash": 15.6,
    "magnesium": 127,
    "total_phenols": 2.8,
    "flavanoids": 3.06,
    "nonflavanoid_phenols": 0.28,
    "proanthocyanins": 2.29,
    "color_intensity": 5.64,
    "hue": 1.04,
    "od280/od315_of_diluted_wines": 3.92,
    "proline": 1065,
}


@pytest.fixture(scope="module")
def image(engine):
    tag, _ = catalog.build(engine, LAB, LAB.image("service"))
    return engine.images.get(tag)


def start(engine, image, port_in_container: int = 8000, **environment):
    return service.start(
        engine, image, port=port_in_container, health=LAB.health, environment=environment
    )


def test_1_multi_stage_and_training_libraries_stay_behind(engine, image):
    froms = [
        line
        for line in (LAB.directory / "Dockerfile").read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert len(froms) >= 2
    probe = engine.containers.run(image.id, ["python", "-c", "import sklearn"], detach=True)
    try:
        assert probe.wait(timeout=60)["StatusCode"] != 0, "scikit-learn is in the image"
    finally:
        probe.remove(force=True)


def test_2_image_under_500_mb(image):
    assert image.attrs["Size"] / 1e6 < LAB.image("service").size_limit_mb


def test_3_non_root(engine, image):
    assert engine.containers.run(image.id, ["id", "-u"], remove=True).decode().strip() != "0"


def test_4_health_endpoint_and_a_real_prediction(engine, image):
    container, url = start(engine, image)
    try:
        assert requests.get(f"{url}/health", timeout=5).json()["status"] == "ok"
        answer = requests.post(f"{url}/predict", json={"features": WINE}, timeout=10).json()
        assert answer["class"] == "class_0"
        assert answer["probabilities"]["class_0"] > 0.9
        bad = requests.post(f"{url}/predict", json={"features": {"alcohol": 1}}, timeout=10)
        assert bad.status_code == 422
        assert "proline" in bad.json()["detail"]["missing"]
        for _ in range(30):
            container.reload()
            if container.attrs["State"]["Health"]["Status"] == "healthy":
                break
            time.sleep(1)
        assert container.attrs["State"]["Health"]["Status"] == "healthy"
    finally:
        container.remove(force=True)


def test_5_graceful_shutdown(engine, image):
    container, url = start(engine, image, MAX_DELAY_MS="5000")
    outcome = {}

    def slow():
        response = requests.post(
            f"{url}/predict?delay_ms=2500", json={"features": WINE}, timeout=30
        )
        outcome["status"] = response.status_code

    try:
        caller = threading.Thread(target=slow)
        caller.start()
        time.sleep(0.8)
        started = time.monotonic()
        container.stop(timeout=25)
        stopped_in = time.monotonic() - started
        caller.join(timeout=30)
        container.reload()
        assert outcome.get("status") == 200
        assert container.attrs["State"]["ExitCode"] == 0
        assert stopped_in < 15
    finally:
        container.remove(force=True)


def test_6_configuration_by_environment(engine, image):
    port = free_port() % 20000 + 20000  # any port inside the container
    container, url = start(engine, image, port_in_container=port, PORT=str(port))
    try:
        assert requests.get(f"{url}/health", timeout=5).ok
    finally:
        container.remove(force=True)


def test_7_readme_covers_build_run_and_configuration():
    readme = (LAB.directory / "README.md").read_text()
    for section in ("## Build", "## Run", "## Configuration"):
        assert section in readme
    for variable in ("PORT", "LOG_LEVEL", "MODEL_PATH", "GRACEFUL_SECONDS"):
        assert f"`{variable}`" in readme
