"""Lesson 03's techniques lab: the reference solution passes every check with BuildKit
(the cache and secret mounts need it), and the starter as delivered fails each technique
check, naming what to do. (Each check kind on wrong answers:
tests/workshop/checking/test_checks.py.)"""

from __future__ import annotations

import pytest

from tests.workshop.labs import work
from workshop import checking
from workshop.labs import catalog

LAB = catalog.load("03-build-techniques")


@pytest.fixture(scope="module")
def reference(engine, tmp_path_factory):
    copy = work.student_copy(LAB, tmp_path_factory.mktemp("ref"))
    return work.run(engine, LAB, copy, builder="buildkit")


def test_the_reference_passes_every_check(reference):
    work.all_passed(reference)
    ignored = work.result(reference, "dockerignore").evidence
    assert ignored["leaked"] == []
    assert ignored["context_kb"] < ignored["directory_kb"] - 200, "data/ (230 kB) stays out"
    assert work.result(reference, "init_process").evidence["pid1"] == "tini"


def test_the_starter_as_delivered_fails_each_technique(engine, tmp_path):
    copy = work.student_copy(LAB, tmp_path, solution=False)
    assert "ARG INDEX_TOKEN" in (copy / "Dockerfile").read_text()
    run = work.run(engine, LAB, copy, builder="buildkit")
    by_kind = {result.kind: result for result in run.checks}
    assert all(result.status == checking.FAILED for result in run.checks), run.message
    # It needs --build-arg INDEX_TOKEN, which the check never passes: no secret, no build.
    assert "does not build" in by_kind["build_secret"].message
    assert ".dockerignore is missing" in by_kind["dockerignore"].message
    assert "has no cache mount" in by_kind["cache_mount"].message


def test_the_catalog_refuses_to_build_it_with_the_classic_builder(engine):
    with pytest.raises(catalog.WorkshopError, match="needs BuildKit"):
        catalog.build(engine, LAB, LAB.image("scorer"))
