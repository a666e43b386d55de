"""The practical assessment's reference solution meets all seven requirements, as the
kit's checks judge them; and it really serves its model."""

from __future__ import annotations

import json

import pytest
import requests

from tests.workshop.labs import service, work
from workshop.labs import catalog

LAB = catalog.load("practical")


@pytest.fixture(scope="module")
def reference(engine, tmp_path_factory):
    return work.run(engine, LAB, work.student_copy(LAB, tmp_path_factory.mktemp("ref")))


def test_the_reference_meets_the_seven_requirements(reference):
    work.all_passed(reference)
    kinds = [check.kind for check in reference.checks]
    assert kinds == [
        "multi_stage",
        "size",
        "non_root",
        "health",
        "graceful_shutdown",
        "env_config",
        "readme",
    ]
    assert work.result(reference, "multi_stage").evidence["final_copies_from"] == ["deps", "train"]


def test_it_serves_a_real_prediction_and_refuses_missing_features(engine):
    tag, _ = catalog.build(engine, LAB, LAB.image("service"))
    container, url = service.start(engine, engine.images.get(tag), health=LAB.health)
    try:
        wine = json.loads((LAB.directory / "request.json").read_text())
        answer = requests.post(f"{url}/predict", json=wine, timeout=10).json()
        assert answer["class"] == "class_0"
        assert answer["probabilities"]["class_0"] > 0.9
        bad = requests.post(f"{url}/predict", json={"features": {"alcohol": 1}}, timeout=10)
        assert bad.status_code == 422
        assert "proline" in bad.json()["detail"]["missing"]
    finally:
        container.remove(force=True)
