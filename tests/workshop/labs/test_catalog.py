"""lab.yml: every lab parses, names what exists, and a broken one says where."""

from __future__ import annotations

import pytest

from workshop.errors import WorkshopError
from workshop.labs import bases, catalog


def test_every_lab_parses_and_points_at_real_files():
    labs = catalog.all_labs()
    assert [lab.name for lab in labs][:2] == ["01-hello-ml", "02-image-classifier"]
    for lab in labs:
        readme = (lab.directory / "README.md").read_text()
        assert "## What will be checked" in readme or "| # | requirement |" in readme, lab.name
        assert "Starting point" in readme or "What you start from" in readme, lab.name
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
