"""lab.yml: every lab parses, names what exists, and a broken one says where."""

from __future__ import annotations

import subprocess

import pytest

from tests.workshop.labs import work
from workshop.errors import WorkshopError
from workshop.labs import bases, catalog, handout


def test_every_lab_parses_and_points_at_real_files():
    labs = catalog.all_labs()
    assert [lab.name for lab in labs][:2] == ["01-hello-ml", "02-image-classifier"]
    for lab in labs:
        page = handout.student_page(lab).read_text()  # what the student reads
        assert "## What will be checked" in page or "| # | requirement |" in page, lab.name
        assert "Starting point" in page or "What you start from" in page, lab.name
        for image in lab.images:
            assert (lab.directory / image.context / image.dockerfile).exists()
            assert image.base is None or image.base in bases.BASES
        for used in lab.uses:
            other, image = used.split("/")
            assert catalog.load(other).image(image)


def test_short_names_and_unknown_labs():
    assert catalog.load("image-classifier").name == "02-image-classifier"
    with pytest.raises(WorkshopError, match="unknown lab 'nope': choose from 01-hello-ml"):
        catalog.load("nope")


def test_a_broken_lab_file_names_the_file(tmp_path, monkeypatch):
    lab = tmp_path / "09-broken"
    lab.mkdir()
    (lab / "lab.yml").write_text("name: 09-broken\ntitle: x\nlesson: y\nports: 80\n")
    monkeypatch.setattr(catalog, "LABS_DIR", tmp_path)
    message = r"09-broken/lab.yml: ports: extra inputs are not permitted"
    with pytest.raises(WorkshopError, match=message):
        catalog.load("09-broken")


def test_build_args_point_at_the_local_stand_in_or_the_registry():
    assert bases.build_arg("python") == "workshop/library/python:3.11-slim"
    assert bases.build_arg("redis", "10.213.0.2:5000") == "10.213.0.2:5000/library/redis:7"


def test_the_practical_hands_out_the_assignment_not_the_reference_answers():
    lab = catalog.load("practical")
    student = handout.student_files(lab)
    assignment = student["ASSIGNMENT.md"].decode()
    assert "how the reference meets it" not in assignment
    assert "## The contract your submission is graded by" in assignment
    assert "README.md" not in student, "requirement 7 is the student's to write"
    assert "how the reference meets it" in (lab.directory / "README.md").read_text()
    assert "README.md" in handout.solution_files(lab)


def test_page_commands_are_read_and_run_as_a_student_types_them(tmp_path):
    """The harness the lesson pages are tested with: continued lines are one command, a
    '# fails' command must fail, and the first command that keeps failing stops the run."""
    page = (
        "Text\n\n1. Step:\n\n   ```bash\n   echo one \\\n     two > out.txt\n"
        "   false   # fails: on purpose\n   ```\n\n```bash\ncat out.txt\n# a comment\n```\n"
    )
    commands = work.page_commands(page)
    assert commands == [
        ("echo one    two > out.txt", False),
        ("false   # fails: on purpose", True),
        ("cat out.txt", False),
    ]
    ran = subprocess.run(
        ["bash", "-c", work.page_script(str(tmp_path), commands, tries=1)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ran.returncode, ran.stdout) == (0, "one two\n")
    for broken, message in (
        ([("cat missing.txt", False)], "page command failed: cat missing.txt"),
        ([("true  # fails", True)], "page command should have failed: true  # fails"),
    ):
        ran = subprocess.run(
            ["bash", "-c", work.page_script(str(tmp_path), broken, tries=1)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert ran.returncode == 1
        assert message in ran.stderr
