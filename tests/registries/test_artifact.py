"""The Artifact Registry adapter: the real client (REST transport) against a local server
speaking the same API, with a real distribution registry holding the pushed images."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from google.cloud import artifactregistry_v1 as ar

from registries.artifact import ArtifactRegistry, ArtifactSettings, split_name
from registries.base import GitHubRepository, RegistryError
from tests.fakes.clouds import GitHubIssuer
from tests.workshop.labcloud.test_cloud import push_as, push_errors, tiny_image


def settings(fake, backing, key_file, **overrides) -> ArtifactSettings:
    return ArtifactSettings(
        project="ml-workshop",
        location="europe-west1",
        credentials_file=key_file,
        endpoint=fake.endpoint,
        iam_endpoint=fake.endpoint,
        registry_host=backing.address,
        **{"labels": {"cohort": "nov-2026"}, **overrides},
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


def test_changed_settings_reach_an_existing_repository(gcr, fake, backing, key_file):
    """keep_images and labels changed in registries.yml reach repositories made before."""
    gcr.ensure_repository("nov-2026/student03/classifier", student="student03")
    changed = ArtifactRegistry(
        settings(
            fake, backing, key_file, keep_images=5, labels={"cohort": "nov-2026", "term": "q4"}
        )
    )
    changed.ensure_repository("nov-2026/student03/classifier")
    repo = fake.repositories[
        "projects/ml-workshop/locations/europe-west1/repositories/nov-2026--student03"
    ]
    assert repo["cleanupPolicies"]["keep-newest"]["mostRecentVersions"]["keepCount"] == 5
    assert repo["labels"] == {"cohort": "nov-2026", "student": "student03", "term": "q4"}
    calls = len(fake.calls)
    changed.ensure_repository("nov-2026/student03/classifier")  # nothing to change now
    assert not [c for c in fake.calls[calls:] if c.startswith("PATCH")]
    gcr.delete_repository("nov-2026/student03/classifier", force=True)


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


def github_login(fake, issuer: GitHubIssuer, variables: dict, github, **kw) -> tuple[int, str]:
    """What google-github-actions/auth does with token_format access_token: GitHub's token
    for the provider's audience -> STS's federated token -> the service account's access
    token. Returns (HTTP status, the access token or the refusal)."""
    provider = variables["GCP_WORKLOAD_IDENTITY_PROVIDER"]
    exchanged = requests.post(
        f"{fake.endpoint}/v1/token",
        json={
            "audience": f"//iam.googleapis.com/{provider}",
            "grantType": "urn:ietf:params:oauth:grant-type:token-exchange",
            "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "subjectTokenType": "urn:ietf:params:oauth:token-type:jwt",
            "subjectToken": issuer.token(github, f"https://iam.googleapis.com/{provider}", **kw),
        },
        timeout=10,
    )
    if exchanged.status_code != 200:
        return exchanged.status_code, exchanged.text
    account = variables["GCP_SERVICE_ACCOUNT"]
    generated = requests.post(
        f"{fake.endpoint}/v1/projects/-/serviceAccounts/{account}:generateAccessToken",
        headers={"Authorization": f"Bearer {exchanged.json()['access_token']}"},
        json={"scope": ["https://www.googleapis.com/auth/cloud-platform"]},
        timeout=10,
    )
    if generated.status_code != 200:
        return generated.status_code, generated.text
    return 200, generated.json()["accessToken"]


def test_ci_trust_lets_that_repositorys_main_branch_push_to_the_students_repository(
    gcr, fake, engine
):
    """--ci github:OWNER/REPO end to end, as the workflow logs in: the pool, a provider whose
    condition names the subject, a service account only that subject may act as, writer on
    the student's repository. Another branch, another repository and, after revoke, the
    same run are refused; a cohort whose name starts the same keeps its trust."""
    issuer = GitHubIssuer(fake.oidc_issuers)
    github = GitHubRepository.parse("github:acme-ml/student05-docker")
    own = ["apr-2027/student05/classifier"]
    variables = gcr.ci_trust("student05", own, github)
    assert gcr.ci_trust("student05", own, github) == variables  # safe to repeat
    assert variables["GCP_WORKLOAD_IDENTITY_PROVIDER"] == (
        f"projects/{fake.project_number}/locations/global/workloadIdentityPools/ws-apr-2027"
        "/providers/apr-2027--student05"
    )
    assert variables["GCP_SERVICE_ACCOUNT"] == (
        "ci-apr-2027--student05@ml-workshop.iam.gserviceaccount.com"
    )
    assert variables["GAR_REPOSITORY"] == "ml-workshop/apr-2027--student05/classifier"
    gcr.ensure_repository("apr-2027/student06/classifier", student="student06")
    other_cohort = gcr.ci_trust("student05", ["apr-2027-b/student05/classifier"], github)

    status, token = github_login(fake, issuer, variables, github)
    assert status == 200, token
    assert push_as(engine, gcr.uri(own[0]), "oauth2accesstoken", token) == []
    refused = push_as(engine, gcr.uri("apr-2027/student06/classifier"), "oauth2accesstoken", token)
    assert refused, "the CI identity must not push to a classmate's repository"

    status, refusal = github_login(fake, issuer, variables, github, branch="feature")
    assert status == 400
    assert "attribute condition" in refusal
    stranger = GitHubRepository.parse("github:someone-else/student05-docker")
    status, refusal = github_login(fake, issuer, variables, stranger)
    assert status == 400
    assert "attribute condition" in refusal

    removed = gcr.revoke_ci_trust("apr-2027/")
    assert removed == sorted(
        [
            "ci-apr-2027--student05@ml-workshop.iam.gserviceaccount.com",
            "workloadIdentityPools/ws-apr-2027",
            "workloadIdentityPools/ws-apr-2027/providers/apr-2027--student05",
        ]
    )
    assert github_login(fake, issuer, variables, github)[0] == 400
    assert github_login(fake, issuer, other_cohort, github)[0] == 200
    assert gcr.revoke_ci_trust("apr-2027/") == []

    # Google keeps a deleted pool's id for 30 days: a second create undeletes it.
    assert gcr.ci_trust("student05", own, github) == variables
    assert github_login(fake, issuer, variables, github)[0] == 200
    gcr.revoke_ci_trust("apr-2027/")
    gcr.revoke_ci_trust("apr-2027-b/")
    for name in (*own, "apr-2027/student06/classifier", "apr-2027-b/student05/classifier"):
        gcr.delete_repository(name, force=True)


def test_revoking_ci_trust_reads_every_page_of_providers(gcr, fake):
    """IAM lists a pool's providers a page at a time: a cohort bigger than a page loses
    every student's trust, and the pool goes only once nothing else is in it."""
    github = GitHubRepository.parse("github:acme-ml/docker-labs")
    students = [f"student{n:02d}" for n in range(1, 6)]  # the fake's pages hold 2
    for student in students:
        gcr.ci_trust(student, [f"may-2027/{student}/classifier"], github)
    removed = gcr.revoke_ci_trust("may-2027/")
    providers = [name for name in removed if "/providers/" in name]
    assert len(providers) == len(students), removed
    assert "workloadIdentityPools/ws-may-2027" in removed
    with fake.lock:
        left = [p for name, p in fake.providers.items() if "ws-may-2027" in name]
    assert all(p["state"] == "DELETED" for p in left), [(p["name"], p["state"]) for p in left]
    for student in students:
        gcr.delete_repository(f"may-2027/{student}/classifier", force=True)


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
