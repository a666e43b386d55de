"""Activity 2: the naive and the multi-stage classifier images, judged by the lab's checks.
(What the layer-reuse check says of a naive layer order: tests/workshop/labs/test_checks.py.)"""

from __future__ import annotations

import pytest

from tests.workshop.labs import work
from workshop.labs import catalog

LAB = catalog.load("03-multistage")


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return work.student_copy(LAB, tmp_path_factory.mktemp("ref"))


@pytest.fixture(scope="module")
def reference(engine, copy):
    return work.run(engine, LAB, copy)


def test_the_reference_passes_every_check(reference):
    work.all_passed(reference)
    sizes = work.result(reference, "size_reduction").evidence
    assert sizes["before_mb"] > 1000
    assert sizes["reduction"] >= 0.75


def test_a_code_change_rebuilds_only_the_code_layers(reference):
    evidence = work.result(reference, "layer_reuse").evidence
    assert evidence["rebuilt"][0].startswith("COPY app/")
    assert evidence["dependency_steps"] >= 2  # the builder's pip install, the venv copy
