"""The Artifact Registry adapter: the real client (REST transport) against a local server
speaking the same API, with a real distribution registry holding the pushed images."""

from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import artifactregistry_v1 as ar

from registries.artifact import ArtifactRegistry, ArtifactSettings, split_name
from registries.base import RegistryError
from tests.workshop.labcloud.test_cloud import push_as, push_errors, tiny_image


def settings(fake, backing, key_file, **overrides) -> ArtifactSettings:
    return ArtifactSettings(
        project="ml-workshop",
        location="europe-west1",
        credentials_file=key_file,
        endpoint=fake.endpoint,
        registry_host=backing.address,
        labels={"cohort": "nov-2026"},
        **overrides,
    )


@pytest.fixture
def gcr(fake, backing, key_file):
    return ArtifactRegistry(
        settings(fake, backing, key_file, student_member="user:{student}@example.edu")
    )


def test_names_map_to_one_repository_per_path(gcr):
    assert split_name("nov-2026/student01/classifier").repository_id == "nov-2026--student01"
    assert split_name("nov-2026/student01/classifier").image == "classifier"
    assert gcr.uri("nov-2026/student01/classifier").endswith(
        "/ml-workshop/nov-2026--student01/classifier"
    )


def test_ensure_repository_awaits_the_operation_and_is_idempotent(gcr, fake):
    uri = gcr.ensure_repository("nov-2026/student01/classifier", student="student01")
    assert uri == f"{gcr.settings.host}/ml-workshop/nov-2026--student01/classifier"
    name = "projects/ml-workshop/locations/europe-west1/repositories/nov-2026--student01"
    repo = fake.repositories[name]
    assert repo["format"] == "DOCKER"
    assert repo["labels"] == {"cohort": "nov-2026", "student": "student01"}
    # keep_images means what ECR's rule means: the newest 20 stay and the rest are deleted
    # (a KEEP policy alone only exempts; a DELETE policy matching every version does it).
    policies = repo["cleanupPolicies"]
    action, tag_state = ar.CleanupPolicy.Action, ar.CleanupPolicyCondition.TagState
    assert policies["keep-newest"]["action"] == action.KEEP  # enums travel as integers
    assert policies["keep-newest"]["mostRecentVersions"]["keepCount"] == 20
    assert policies["delete-the-rest"]["action"] == action.DELETE
    assert policies["delete-the-rest"]["condition"]["tagState"] == tag_state.ANY
    assert any(
        call.startswith("GET /v1/projects/ml-workshop/locations/europe-west1/operations/")
        for call in fake.calls
    ), "the create operation was polled"
    assert gcr.ensure_repository("nov-2026/student01/classifier") == uri


def test_login_pushes_list_tags_and_delete(gcr, engine, backing):
    credentials = gcr.login()
    assert credentials.username == "oauth2accesstoken"
    assert credentials.password.startswith("ya29.fake-")
    assert credentials.password not in repr(credentials)
    assert credentials.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)
    assert gcr.login() is credentials, "a fresh token is reused"

    uri = gcr.ensure_repository("dec-2026/student02/app")
    tiny_image(engine, uri)
    try:
        auth = {"username": credentials.username, "password": credentials.password}
        assert push_errors(engine, uri, auth) == []
    finally:
        engine.images.remove(f"{uri}:1", force=True)

    assert gcr.list_repositories("dec-2026/") == ["dec-2026/student02/app"]
    assert gcr.list_tags("dec-2026/student02/app") == ["1"]
    with pytest.raises(RegistryError, match="still holds 1 tag"):
        gcr.delete_repository("dec-2026/student02/app")
    assert gcr.delete_repository("dec-2026/student02/app", force=True) is True
    assert gcr.list_tags("dec-2026/student02/app") == []
    assert backing.tags("ml-workshop/dec-2026--student02/app") == {}
    assert gcr.delete_repository("dec-2026/student02/app", force=True) is False


def test_list_repositories_follows_pages(gcr):
    for index in range(5):  # the fake pages by 2
        gcr.ensure_repository(f"paging/s{index}/app")
    assert gcr.list_repositories("paging/") == []  # no image pushed: no package yet
    assert all(gcr.delete_repository(f"paging/s{index}/app") for index in range(5))


def test_student_credentials_grant_writer_on_their_repository_once(gcr, fake):
    gcr.ensure_repository("nov-2026/student03/classifier", student="student03")
    card = gcr.student_credentials("student03", ["nov-2026/student03/classifier"])
    gcr.student_credentials("student03", ["nov-2026/student03/classifier"])
    resource = "projects/ml-workshop/locations/europe-west1/repositories/nov-2026--student03"
    assert fake.policies[resource]["bindings"] == [
        {"role": "roles/artifactregistry.writer", "members": ["user:student03@example.edu"]}
    ]
    assert card["member"] == "user:student03@example.edu"
    assert card["repositories"][0].endswith("/nov-2026--student03/classifier")


def test_the_registry_takes_a_push_only_where_iam_grants_it(gcr, fake, engine):
    """The student's own Google token (oauth2accesstoken, as after `gcloud auth
    configure-docker`) pushes to their repository, where the grant is, and nowhere else."""
    for student in ("student07", "student08"):
        gcr.ensure_repository(f"jan-2027/{student}/app", student=student)
    card = gcr.student_credentials("student07", ["jan-2027/student07/app"])
    token = fake.issue_token(card["member"])
    own, other = (uri for uri in (gcr.uri(f"jan-2027/{s}/app") for s in ("student07", "student08")))

    assert push_as(engine, own, "oauth2accesstoken", token) == []
    refused = push_as(engine, other, "oauth2accesstoken", token)
    assert refused, "a push to another student's repository must be refused"
    assert "denied" in refused[0].lower() or "unauthorized" in refused[0].lower()
    assert push_as(engine, other, "oauth2accesstoken", "ya29.made-up"), "unknown token refused"
    assert push_as(engine, other, "someone", token), "only oauth2accesstoken logs in with a token"

    # The kit's own login owns the project, yet a repository that was never created is
    # refused, as AR refuses it.
    kit = gcr.login()
    assert push_as(engine, gcr.uri("jan-2027/nobody/app"), kit.username, kit.password)

    # The cohort's delete: each image (its emptied repository and the grant on it go too),
    # then the repositories nobody pushed to; the same token is refused afterwards.
    assert gcr.delete_repository("jan-2027/student07/app", force=True) is True
    assert gcr.revoke_student_credentials("jan-2027/") == ["jan-2027/student08"]
    assert not [name for name in fake.repositories if "jan-2027" in name]
    assert push_as(engine, own, "oauth2accesstoken", token)


def test_revoking_removes_a_repository_nobody_pushed_to_and_only_that_cohorts(gcr, fake):
    """A student who never pushed has a repository (and a writer grant) but no image, so
    deleting images never reaches it; revoking dec-2026 removes it, and leaves dec-2026-b."""
    for cohort in ("dec-2026", "dec-2026-b"):
        gcr.ensure_repository(f"{cohort}/student04/classifier", student="student04")
        gcr.student_credentials("student04", [f"{cohort}/student04/classifier"])
    base = "projects/ml-workshop/locations/europe-west1/repositories"
    assert gcr.revoke_student_credentials("dec-2026/") == ["dec-2026/student04"]
    assert f"{base}/dec-2026--student04" not in fake.repositories
    assert f"{base}/dec-2026-b--student04" in fake.repositories
    assert gcr.revoke_student_credentials("dec-2026/") == []
    assert gcr.revoke_student_credentials("dec-2026-b/") == ["dec-2026-b/student04"]


@pytest.mark.parametrize(
    "name",
    [
        "classifier",
        "Nov/s1/app",
        "nov--2026/s1/app",
        "2026/s1/app",
        "a-/s1/app",
        "n/s 1/app",
        "x/" * 40 + "app",
    ],
)
def test_names_artifact_registry_cannot_hold_are_refused_before_any_call(gcr, fake, name):
    before = len(fake.calls)
    with pytest.raises(RegistryError, match="gcr: invalid repository name"):
        gcr.ensure_repository(name)
    assert len(fake.calls) == before


def test_a_token_the_server_does_not_know_is_one_line(fake, backing, key_file):
    gcr = ArtifactRegistry(settings(fake, backing, key_file))
    gcr.login()
    fake.tokens.clear()
    fake.service_accounts.clear()
    with pytest.raises(RegistryError, match="gcr: Google refused the credentials"):
        gcr.ensure_repository("nov-2026/student09/app")


def test_missing_credentials_name_the_fix(monkeypatch, tmp_path, fake, backing):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(RegistryError, match=r"gcr: no usable Google credentials.*gcloud auth"):
        ArtifactRegistry(settings(fake, backing, None))
    with pytest.raises(RegistryError, match="gcr: no usable Google credentials"):
        ArtifactRegistry(settings(fake, backing, str(tmp_path / "missing.json")))
