"""Activity 2: the naive and the multi-stage classifier images, judged by the lab's checks.
(What the layer-reuse check says of a naive layer order: tests/workshop/checking/test_checks.py.)"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess

import docker.errors
import pytest

from tests.conftest import REPO
from tests.workshop.labs import work
from workshop import checking
from workshop.checking.target import BUILDX_CONFIG
from workshop.labs import bases, catalog

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


def test_the_page_runs_as_written_in_a_students_copy(engine, tmp_path):
    """The page's commands, as the student types them after writing their Dockerfile, in a
    copy of the lab as delivered, with BuildKit (the buildx plugin, as on the VMs) and the
    base under the name the classroom registry gives it. After the code-only change the
    multi-stage build takes every step before `COPY app/` from the cache and the naive
    build installs its requirements again."""
    copy = work.student_copy(LAB, tmp_path / "labs", solution=False)  # ~/labs/<lab>
    page = (REPO / "labs/03-multistage/README.md").read_text()
    _, marker, after = page.partition("<!-- the student's edits")
    assert marker, "the page marks where the student's Dockerfile is written"
    for name in LAB.handout.solution:  # the Dockerfile, as the student writes it
        (copy / name).write_text((REPO / "labs/02-image-classifier" / name).read_text())
    registry = "classroom.invalid:5000"  # what $REGISTRY names on a VM
    base = f"{registry}/library/python:3.11-slim"
    engine.images.get(bases.build_arg("python")).tag(base)
    # The student's own code: unique to this run, so the engine's build cache from an
    # earlier run (same page, same edit) cannot make the changed layer look cached.
    with (copy / "app/main.py").open("a") as code:
        code.write(f"# {tmp_path.name} {secrets.token_hex(4)}\n")
    main = (copy / "app/main.py").read_text()
    script = work.page_script(str(copy), work.page_commands(after), tries=1)
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "REGISTRY": registry,
        "DOCKER_CONFIG": str(BUILDX_CONFIG),
    }
    env.pop("DOCKER_BUILDKIT", None)
    try:
        ran = subprocess.run(
            ["bash", "-c", script], env=env, capture_output=True, text=True, check=False
        )
        assert ran.returncode == 0, ran.stderr[-3000:]
        builds = re.split(r"^#0 building with .*$", ran.stderr, flags=re.MULTILINE)[1:]
        assert len(builds) == 4, "four builds on the page, each with BuildKit"
        optimised = checking.kinds.build.build_steps(builds[2])
        first_code = next(
            i for i, (step, _) in enumerate(optimised) if step.startswith("COPY app/")
        )
        assert all(cached for _, cached in optimised[:first_code]), optimised
        assert not optimised[first_code][1], "the changed code is copied again"
        naive = checking.kinds.build.build_steps(builds[3])
        assert any("pip install" in step and not cached for step, cached in naive), naive
        assert "classifier" in ran.stdout  # docker images classifier
        assert (copy / "app/main.py").read_text() == main, "the page puts the file back"
    finally:
        for tag in (base, "classifier:naive", "classifier:optimised"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                engine.images.remove(tag)
