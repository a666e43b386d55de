"""Image tags follow their recipes: same recipe, same tag; any change, a new tag."""

from __future__ import annotations

import shutil

import pytest

from workshop.errors import WorkshopError
from workshop.labcloud import images


def test_context_digest_changes_with_any_file_and_with_the_base(tmp_path):
    context = tmp_path / "student-vm"
    shutil.copytree(images.IMAGES_DIR / "student-vm", context)
    first = images.context_digest(context, "workshop/debian-base:trixie-aaa")
    assert images.context_digest(context, "workshop/debian-base:trixie-aaa") == first
    assert images.context_digest(context, "workshop/debian-base:trixie-bbb") != first
    (context / "sshd-workshop.conf").write_text("PermitRootLogin yes\n")
    assert images.context_digest(context, "workshop/debian-base:trixie-aaa") != first


def test_base_tag_depends_on_suite_and_mirror(monkeypatch):
    trixie = images.base_tag(images.DISTROS["debian13"])
    assert trixie.startswith("workshop/debian-base:trixie-")
    assert images.base_tag(images.DISTROS["debian12"]).startswith("workshop/debian-base:bookworm-")
    monkeypatch.setenv("WORKSHOP_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert images.base_tag(images.DISTROS["debian13"]) != trixie


def test_unknown_distro_names_the_supported_ones():
    with pytest.raises(WorkshopError, match="use one of debian13, debian12"):
        images.get_distro("ubuntu24")
