"""The classroom registry adapter against the lab cloud's real distribution registry."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from registries import push
from registries.base import RegistryError
from registries.local import LocalRegistry
from tests.workshop.labcloud.test_cloud import push_errors, tiny_image
from workshop.errors import WorkshopError
from workshop.labcloud import images
from workshop.labcloud.registry import classroom_registry

pytestmark = pytest.mark.labcloud


@pytest.fixture
def registry(lab_cloud) -> LocalRegistry:
    return classroom_registry(lab_cloud["cohort"])


def push_tiny(engine, lab_cloud, repository: str) -> None:
    state = Path(lab_cloud["state_dir"])
    credentials = json.loads((state / "registry/credentials.json").read_text())
    target = f"{lab_cloud['registry']['address']}/{repository}"
    tiny_image(engine, target)
    try:
        assert push_errors(engine, target, credentials) == []
    finally:
        engine.images.remove(f"{target}:1", force=True)


def test_list_tags_and_delete_a_pushed_repository(registry, engine, lab_cloud):
    assert registry.login().username == "instructor"
    uri = registry.ensure_repository("adapter/student01/tiny")
    assert uri == f"{lab_cloud['registry']['address']}/adapter/student01/tiny"
    push_tiny(engine, lab_cloud, "adapter/student01/tiny")

    assert "adapter/student01/tiny" in registry.list_repositories("adapter/")
    assert registry.list_tags("adapter/student01/tiny") == ["1"]
    assert registry.manifest_digest("adapter/student01/tiny", "1").startswith("sha256:")

    with pytest.raises(RegistryError, match="still holds 1 tag"):
        registry.delete_repository("adapter/student01/tiny")
    assert registry.delete_repository("adapter/student01/tiny", force=True) is True
    assert registry.list_tags("adapter/student01/tiny") == []
    assert registry.delete_repository("adapter/student01/tiny", force=True) is False


def test_a_wrong_password_is_one_line_naming_the_user(lab_cloud):
    state = Path(lab_cloud["state_dir"])
    wrong = LocalRegistry(
        lab_cloud["registry"]["address"], "instructor", "wrong", str(state / "registry/ca.crt")
    )
    with pytest.raises(RegistryError, match="refused the login of 'instructor'"):
        wrong.login()


def test_an_untrusted_certificate_names_the_fix(lab_cloud):
    untrusted = LocalRegistry(lab_cloud["registry"]["address"], "instructor", "x", ca_file=None)
    with pytest.raises(RegistryError, match="certificate we do not trust"):
        untrusted.login()


def test_an_unknown_cohort_names_the_command_to_run(state_root):
    with pytest.raises(WorkshopError, match="workshop cloud up --cohort nowhere"):
        classroom_registry("nowhere")


def test_invalid_names_are_refused(registry):
    with pytest.raises(RegistryError, match="local: invalid repository name 'Bad/Name'"):
        registry.ensure_repository("Bad/Name")


def test_student_credentials_are_their_own_classroom_login(registry, lab_cloud):
    card = registry.student_credentials("student01", ["adapter/student01/app"])
    password = (Path(lab_cloud["state_dir"]) / "students/student01/password").read_text().strip()
    assert card["username"] == "student01"
    assert card["password"] == password
    assert card["scoped"] is False
    student = LocalRegistry(card["registry"], card["username"], card["password"], registry._verify)
    assert student.login().username == "student01"
    with pytest.raises(RegistryError, match="student09 is not on cohort"):
        registry.student_credentials("student09", ["adapter/student09/app"])


def test_a_one_gigabyte_image_is_pushed_showing_its_progress(engine, lab_cloud, registry):
    """ML images are GBs: a generated 1.1 GB layer goes up with progress reported as it
    goes, and its digest is read back."""
    base = images.build_base(engine, images.get_distro(images.DEFAULT_DISTRO)).tag
    tag = f"kit-test/{lab_cloud['cohort']}-big:1"
    dockerfile = f"FROM {base}\nRUN head -c 1100000000 /dev/urandom > /weights.bin\n"
    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    events: list[tuple[str, int, int]] = []
    try:
        results = push.push_all(
            engine,
            {"local": registry},
            [push.SourceImage(tag, "big/model", "1")],
            prefix="adapter",
            progress=lambda _key, status, sent, total: events.append((status, sent, total)),
        )
        assert results[0].error is None
        assert results[0].bytes_uploaded >= 1_000_000_000
        uploading = [sent for status, sent, total in events if status == "Pushing"]
        assert len(uploading) >= 10, "progress shown while the layer goes up"
        assert uploading == sorted(uploading)
        assert max(total for _, _, total in events) >= 1_000_000_000
        assert registry.manifest_digest("adapter/big/model", "1") == results[0].digest
    finally:
        registry.delete_repository("adapter/big/model", force=True)
        engine.images.remove(tag, force=True)
