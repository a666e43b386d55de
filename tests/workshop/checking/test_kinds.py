"""The kinds table: every lab.yml check goes through its kind's settings model, so a
setting of another kind (or an unknown kind) is refused naming the lab, the check and
the field, before anything is built."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from workshop import checking
from workshop.checking import kinds
from workshop.checking.target import LocalTarget
from workshop.errors import WorkshopError
from workshop.labs import catalog


def test_every_lab_in_the_catalog_parses():
    for lab in catalog.all_labs():
        parsed = kinds.parse(lab)
        assert [c.name for c in parsed] == [c.name for c in lab.checks]
        assert all(type(c) is kinds.KINDS[c.kind][0] for c in parsed)


def test_each_kind_has_one_model_and_one_function():
    models = [model for model, _ in kinds.KINDS.values()]
    assert len(set(models)) == len(models)
    for kind, (model, function) in kinds.KINDS.items():
        assert kinds.kind_of(model) == kind
        assert function.__name__ == f"check_{kind}"


@pytest.fixture
def labs_dir(tmp_path, monkeypatch) -> Path:
    """A labs directory holding a copy of the practical whose lab.yml the test edits."""
    shutil.copytree(catalog.load("practical").directory, tmp_path / "practical")
    monkeypatch.setattr(catalog, "LABS_DIR", tmp_path)
    return tmp_path


def edit_checks(labs_dir: Path, change) -> catalog.Lab:
    path = labs_dir / "practical" / "lab.yml"
    data = yaml.safe_load(path.read_text())
    change(data["checks"])
    path.write_text(yaml.safe_dump(data))
    return catalog.load("practical")


def test_a_setting_of_another_kind_is_refused_naming_lab_check_and_field(labs_dir):
    def wrong(checks: list[dict]) -> None:
        size = next(c for c in checks if c["kind"] == "size")
        size["expect_status"] = 415  # a reject check's setting

    lab = edit_checks(labs_dir, wrong)
    with pytest.raises(WorkshopError) as refused:
        kinds.parse(lab)
    message = str(refused.value)
    size_name = next(c.name for c in lab.checks if c.kind == "size")
    assert "practical/lab.yml" in message
    assert repr(size_name) in message
    assert "expect_status is not a setting of this kind" in message


def test_a_setting_of_the_wrong_type_is_refused(labs_dir):
    def bad_type(checks: list[dict]) -> None:
        next(c for c in checks if c["kind"] == "graceful_shutdown")["json_file"] = ["a", "b"]

    with pytest.raises(WorkshopError, match=r"\(graceful_shutdown\): json_file: .*string"):
        kinds.parse(edit_checks(labs_dir, bad_type))


def test_an_unknown_kind_is_refused_naming_the_kinds(labs_dir):
    def unknown(checks: list[dict]) -> None:
        checks.append({"name": "vibes", "kind": "vibe_check"})

    with pytest.raises(WorkshopError, match=r"'vibes'.*unknown kind 'vibe_check'.*health"):
        kinds.parse(edit_checks(labs_dir, unknown))


def test_the_engine_refuses_it_before_building_anything(labs_dir, tmp_path):
    def wrong(checks: list[dict]) -> None:
        next(c for c in checks if c["kind"] == "health")["min_reduction"] = 0.5

    lab = edit_checks(labs_dir, wrong)
    env = checking.Environment(bases={}, published={})
    with pytest.raises(WorkshopError, match="min_reduction is not a setting"):
        checking.run_lab(lab, LocalTarget(tmp_path / "work"), env)
