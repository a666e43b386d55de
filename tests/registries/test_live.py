"""The adapters against the real clouds, when asked for and possible.

Set WORKSHOP_LIVE_AWS=1 (or _GCP, _AZURE), give the cloud's usual credentials, and a
registries file (registries.yml or $WORKSHOP_REGISTRIES) with that cloud's section. Each
test creates a throw-away repository, pushes a tiny image with the adapter's login,
reads its tag back, and deletes it. Otherwise each test is skipped, saying what is missing.
"""

from __future__ import annotations

import os
import secrets

import pytest

from registries import config
from tests.workshop.labcloud.test_cloud import push_errors, tiny_image

CLOUDS = {"ecr": "WORKSHOP_LIVE_AWS", "gcr": "WORKSHOP_LIVE_GCP", "acr": "WORKSHOP_LIVE_AZURE"}


def live_registry(name: str):
    variable = CLOUDS[name]
    if os.environ.get(variable) != "1":
        pytest.skip(f"live {name} test: set {variable}=1 with credentials to run it")
    settings = config.load()
    if getattr(settings, name) is None:
        pytest.skip(f"live {name} test: add the '{name}:' section to {config.file_path()}")
    return config.open_registry(name, settings)


@pytest.mark.parametrize("name", sorted(CLOUDS))
def test_round_trip_against_the_real_cloud(name, engine):
    registry = live_registry(name)
    repository = f"kit-live-{secrets.token_hex(3)}/ci/tiny"
    uri = registry.ensure_repository(repository)
    try:
        credentials = registry.login()
        tiny_image(engine, uri)
        auth = {"username": credentials.username, "password": credentials.password}
        assert push_errors(engine, uri, auth) == []
        assert registry.list_tags(repository) == ["1"]
        assert repository in registry.list_repositories(repository.split("/")[0])
    finally:
        if engine.images.list(f"{uri}:1"):
            engine.images.remove(f"{uri}:1", force=True)
        registry.delete_repository(repository, force=True)
    assert registry.list_tags(repository) == []
