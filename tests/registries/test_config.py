"""The registries file: the example parses, and mistakes name the file, key and fix."""

from __future__ import annotations

import re

import pytest

from registries import config
from registries.base import RegistryError
from tests.conftest import REPO

EXAMPLE = REPO / "registries.example.yml"


def test_the_example_parses_with_every_section_switched_on(tmp_path):
    text = EXAMPLE.read_text()
    # Uncomment the commented sections: "# gcr:" and their indented "#   key: value" lines.
    enabled = re.sub(r"(?m)^# (?=[a-z_]+:|  )", "", text)
    path = tmp_path / "registries.yml"
    path.write_text(enabled)
    parsed = config.load(path)
    assert parsed.ecr.region == "eu-west-1"
    assert parsed.gcr.student_member == "user:{student}@example.edu"
    assert parsed.acr.registry == "mlworkshop"
    assert parsed.local.address == "registry.example.edu:5000"
    assert parsed.student_repositories == ["classifier"]
    assert config.load(EXAMPLE).gcr is None, "as shipped, only ecr is switched on"


def test_no_file_means_local_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKSHOP_REGISTRIES", raising=False)
    parsed = config.load()
    assert (parsed.ecr, parsed.gcr, parsed.acr, parsed.local) == (None, None, None, None)
    with pytest.raises(RegistryError, match="ecr: not configured: add the 'ecr:' section"):
        config.open_registry("ecr", parsed)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ecr: [1, 2\n", "not valid YAML"),
        ("- ecr\n", "expected a mapping"),
        ("ecr:\n  region: eu-west-1\n  keep_images: many\n", "ecr.keep_images: input should"),
        ("gcr:\n  project: p\n", "gcr.location: field required"),
        ("ecs:\n  region: x\n", "ecs: extra inputs are not permitted"),
    ],
)
def test_mistakes_name_the_file_and_key(tmp_path, content, message):
    path = tmp_path / "registries.yml"
    path.write_text(content)
    with pytest.raises(RegistryError, match=re.escape(message)) as caught:
        config.load(path)
    assert str(path) in str(caught.value)


def test_a_named_file_that_is_missing_says_so(tmp_path):
    with pytest.raises(RegistryError, match=r"no such registries file: copy registries\.example"):
        config.load(tmp_path / "absent.yml")


def test_local_without_a_section_or_a_lab_cloud_names_the_section(tmp_path):
    path = tmp_path / "registries.yml"
    path.write_text("student_repositories: [classifier]\n")
    with pytest.raises(RegistryError, match=r"local: not configured: add the 'local:' section"):
        config.open_registry("local", config.load(path))


def test_a_file_that_is_not_a_mapping_says_so(tmp_path):
    path = tmp_path / "registries.yml"
    path.write_text("- ecr\n- gcr\n")
    with pytest.raises(RegistryError, match="expected a mapping of keys to values"):
        config.load(path)


def test_a_local_password_file_that_cannot_be_read(tmp_path):
    path = tmp_path / "registries.yml"
    path.write_text("local:\n  address: r:5000\n  username: u\n  password_file: /nonexistent/pw\n")
    with pytest.raises(RegistryError, match=r"cannot read local\.password_file"):
        config.open_registry("local", config.load(path))
