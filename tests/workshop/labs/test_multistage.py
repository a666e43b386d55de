"""Activity 2: the naive and the multi-stage classifier images, built and measured."""

from __future__ import annotations

import shutil

import pytest
import requests

from tests.workshop.labs.test_classifier import start
from workshop.labs import catalog

LAB = catalog.load("03-multistage")


@pytest.fixture(scope="module")
def built(engine):
    tags = {}
    for image in LAB.images:
        tags[image.name], _ = catalog.build(engine, LAB, image)
    return {name: engine.images.get(tag) for name, tag in tags.items()}


def test_the_optimised_image_is_at_least_75_percent_smaller(built):
    naive = built["naive"].attrs["Size"] / 1e6
    optimised = built["optimised"].attrs["Size"] / 1e6
    assert naive > 1000, f"naive {naive:.0f} MB"
    assert optimised < LAB.image("optimised").size_limit_mb
    assert 1 - optimised / naive >= 0.75, f"{naive:.0f} MB -> {optimised:.0f} MB"


def test_the_naive_image_still_works(engine, built):
    container, url = start(engine, built["naive"])
    try:
        assert requests.get(f"{url}/health", timeout=5).json()["status"] == "ok"
    finally:
        container.remove(force=True)


def test_layer_order_naive_copies_everything_before_installing(built):
    def steps(image):  # oldest first
        return [step["CreatedBy"] for step in reversed(image.history())]

    naive = steps(built["naive"])
    copy_all = next(i for i, step in enumerate(naive) if "COPY dir:" in step)
    install = next(i for i, step in enumerate(naive) if "pip install" in step)
    assert copy_all < install, "any file change reinstalls every dependency"

    optimised = steps(built["optimised"])
    venv = next(i for i, step in enumerate(optimised) if "/opt/venv" in step and "COPY" in step)
    code = max(i for i, step in enumerate(optimised) if "COPY dir:" in step)
    assert venv < code


def test_a_code_only_change_reuses_the_dependency_and_model_layers(engine, built, tmp_path):
    spec = LAB.image("optimised")
    source = (LAB.directory / spec.context).resolve()
    copy = tmp_path / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "app" / "main.py").write_text(
        (copy / "app" / "main.py").read_text() + "\n# a code-only change\n"
    )
    moved = LAB.model_copy(update={"directory": copy})
    changed = spec.model_copy(update={"context": "."})
    tag, _ = catalog.build(engine, moved, changed, tag="lab03-code-change:1")
    try:
        before, after = engine.api.history(built["optimised"].id), engine.api.history(tag)
        # Newest first: the code is the last COPY; everything older must be the same layers.
        code = next(i for i, step in enumerate(before) if "COPY dir:" in step["CreatedBy"])
        assert "COPY dir:" in after[code]["CreatedBy"]
        assert after[code]["Id"] != before[code]["Id"], "the code layer was rebuilt"
        older = [step["Id"] for step in before[code + 1 :]]
        assert [step["Id"] for step in after[code + 1 :]] == older
        assert any("/opt/venv" in step["CreatedBy"] for step in before[code + 1 :])
    finally:
        engine.images.remove(tag, force=True)
