"""The adapters against the real clouds, when asked for and possible.

Set WORKSHOP_LIVE_AWS=1 (or _GCP, _AZURE), give the cloud's usual credentials, and a
registries file (registries.yml or $WORKSHOP_REGISTRIES) with that cloud's section. Each
test creates a throw-away repository, pushes a tiny image with the adapter's login,
reads its tag back, and deletes it; a second one gives a student their repository and
login, pushes with that login (and is refused a classmate's repository), and removes both.
Otherwise each test is skipped, saying what is missing.
"""

from __future__ import annotations

import base64
import os
import secrets
import time

import boto3
import botocore.exceptions
import pytest

from registries import config
from registries.base import GitHubRepository
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


def student_login(name: str, card: dict) -> dict[str, str]:
    """The registry login a student gets from their card, as they would get it."""
    if name == "acr":
        return {"username": card["username"], "password": card["password"]}
    if name == "ecr":
        client = boto3.client(
            "ecr",
            region_name=card["region"],
            aws_access_key_id=card["aws_access_key_id"],
            aws_secret_access_key=card["aws_secret_access_key"],
        )
        for _ in range(30):  # a new IAM key takes a few seconds to be accepted
            try:
                data = client.get_authorization_token()["authorizationData"][0]
                break
            except botocore.exceptions.ClientError:
                time.sleep(2)
        else:
            pytest.fail("the student's new IAM key was never accepted by ECR")
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return {"username": user, "password": password}
    pytest.skip(
        "live gcr student push: students log in with their own Google account "
        "(gcloud auth configure-docker); no secret a test could use is issued"
    )


@pytest.mark.parametrize("name", sorted(CLOUDS))
def test_student_access_create_push_and_delete_against_the_real_cloud(name, engine):
    """What `workshop registries create` and `delete` do for one student: their repository
    and login; a push to it works and one to a classmate's is refused; afterwards the
    repositories and the login are gone."""
    registry = live_registry(name)
    cohort = f"kit-live-{secrets.token_hex(3)}"
    own, other = f"{cohort}/student01/tiny", f"{cohort}/student02/tiny"
    uris = {
        repo: registry.ensure_repository(repo, student=repo.split("/")[1]) for repo in (own, other)
    }
    try:
        card = registry.student_credentials("student01", [own])
        auth = student_login(name, card)
        tiny_image(engine, uris[own])
        assert push_errors(engine, uris[own], auth) == []
        tiny_image(engine, uris[other])
        assert push_errors(engine, uris[other], auth), "a classmate's repository is refused"
    finally:
        for uri in uris.values():
            if engine.images.list(f"{uri}:1"):
                engine.images.remove(f"{uri}:1", force=True)
        for repo in (own, other):
            registry.delete_repository(repo, force=True)
        registry.revoke_student_credentials(f"{cohort}/")
    assert registry.list_repositories(f"{cohort}/") == []
    assert registry.revoke_student_credentials(f"{cohort}/") == []


@pytest.mark.parametrize("name", sorted(CLOUDS))
def test_ci_trust_is_created_and_removed_in_the_real_cloud(name):
    """`--ci github:OWNER/REPO` against the real cloud: the trust is made (the cloud accepts
    the policies, conditions and federated credential as written), repeated safely, and
    removed by the cohort's delete. A GitHub token cannot be minted here, so the login
    itself is left to the lab's workflow run."""
    registry = live_registry(name)
    cohort = f"kit-live-{secrets.token_hex(3)}"
    own = [f"{cohort}/student01/tiny"]
    github = GitHubRepository.parse("github:workshop-kit-live/student01-docker")
    try:
        variables = registry.ci_trust("student01", own, github)
        assert registry.ci_trust("student01", own, github) == variables
        assert all(variables.values())
    finally:
        removed = registry.revoke_ci_trust(f"{cohort}/")
        registry.delete_repository(own[0], force=True)
    assert removed, "the trust it made is removed"
    assert registry.revoke_ci_trust(f"{cohort}/") == []
