"""Activity 1: the reference solution passes every check of its lab.yml (real photographs
through the real model, size, user, graceful shutdown), and the starter fails them with
reasons a student can act on."""

from __future__ import annotations

import pytest
import requests

from tests.workshop.labs import service as service_container
from tests.workshop.labs import work
from workshop import checking
from workshop.labs import catalog, handout

LAB = catalog.load("02-image-classifier")


@pytest.fixture(scope="module")
def reference(engine, tmp_path_factory):
    return work.run(engine, LAB, work.student_copy(LAB, tmp_path_factory.mktemp("ref")))


@pytest.fixture(scope="module")
def image(engine):
    tag, _ = catalog.build(engine, LAB, LAB.image("classifier"))
    return engine.images.get(tag)


def test_the_reference_solution_passes_every_check(reference):
    work.all_passed(reference)
    assert [check.name for check in reference.checks] == [check.name for check in LAB.checks]


def test_the_evidence_is_what_a_student_would_see(reference):
    assert "cat" in work.result(reference, "predict").evidence["top5"][0]
    assert work.result(reference, "reject").evidence["status"] == 415
    assert work.result(reference, "size").evidence["size_mb"] < 500
    assert work.result(reference, "non_root").evidence["uids"] == ["10001"]
    graceful = work.result(reference, "graceful_shutdown").evidence
    assert graceful["status"] == 200
    assert graceful["exit_code"] == 0
    assert graceful["stop_seconds"] < checking.kinds.runtime.STOP_TIMEOUT


def test_the_starter_fails_with_reasons(engine, tmp_path):
    copy = work.student_copy(LAB, tmp_path, solution=False)
    run = work.run(engine, LAB, copy, starter=handout.starter_digests(LAB))
    assert run.status == checking.NOT_STARTED, run.message
    assert run.message.startswith("nothing to check yet: Dockerfile, ")
    assert "app/main.py are as delivered" in run.message
    health = work.result(run, "health")
    assert health.status == checking.FAILED
    assert "exited (code 0) before answering GET /health" in health.message


def test_health_names_the_model_and_a_bad_upload_is_explained(engine, image):
    container, url = service_container.start(
        engine, image, health=LAB.health, environment=LAB.environment
    )
    try:
        body = requests.get(f"{url}/health", timeout=5).json()
        assert body == {"status": "ok", "model": "efficientnet_lite0", "labels": 1000}
        notes = handout.photos()["notes.txt"]
        refused = requests.post(f"{url}/predict", files={"file": ("notes.txt", notes)}, timeout=30)
        assert "notes.txt is not an image" in refused.json()["detail"]
        empty = requests.post(f"{url}/predict", files={"file": ("e.jpg", b"")}, timeout=30)
        assert empty.status_code == 400
    finally:
        container.remove(force=True)


def test_exec_form_cmd_and_a_healthcheck(image):
    config = image.attrs["Config"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert config["Cmd"] == ["python", "-m", "app"]
