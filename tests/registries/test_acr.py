"""The ACR adapter: the real Azure SDKs against a local server speaking ARM, ACR's token
service and /acr/v1, in front of a real distribution registry that enforces the tokens."""

from __future__ import annotations

import time

import docker.errors
import pytest
import requests

from registries.acr import REFRESH_TOKEN_USER, AcrRegistry, AcrSettings
from registries.base import GitHubRepository, RegistryError
from tests.fakes.clouds import EntraToken, GitHubIssuer, acr_settings
from tests.workshop.labcloud.test_cloud import push_as, tiny_image


@pytest.fixture(scope="module")
def fake(azure):
    return azure


def settings(fake, **overrides) -> AcrSettings:
    return acr_settings(fake, **overrides)


@pytest.fixture
def acr(fake):
    return AcrRegistry(settings(fake), credential=EntraToken("entra-instructor"))


def test_a_student_token_pushes_to_its_own_repository_only(acr, fake, engine):
    card = acr.student_credentials(
        "student01", ["nov-2026/student01/classifier", "nov-2026/student01/gateway"]
    )
    assert card["username"] == "nov-2026-student01"
    assert card["registry"] == fake.login_server
    assert fake.scope_maps["nov-2026-student01"]["properties"]["actions"] == [
        "repositories/nov-2026/student01/classifier/content/read",
        "repositories/nov-2026/student01/classifier/content/write",
        "repositories/nov-2026/student01/classifier/metadata/read",
        "repositories/nov-2026/student01/gateway/content/read",
        "repositories/nov-2026/student01/gateway/content/write",
        "repositories/nov-2026/student01/gateway/metadata/read",
    ]
    assert any("/operationStatuses/" in call for call in fake.calls), "creation was polled"
    assert any("/generateCredentials/operationResults/" in c for c in fake.calls), (
        "the password came from the 202's Location, as ARM answers"
    )

    # docker login with the token, then pushes, exactly as the student will.
    engine.login(card["username"], card["password"], registry=fake.login_server, reauth=True)
    own = f"{fake.login_server}/nov-2026/student01/classifier"
    assert push_as(engine, own, card["username"], card["password"]) == []
    other = f"{fake.login_server}/nov-2026/student02/classifier"
    refused = push_as(engine, other, card["username"], card["password"])
    assert refused, "a push to another student's repository must be refused"
    assert any(word in refused[0].lower() for word in ("denied", "unauthorized", "authentication"))
    assert fake.registry.tags("nov-2026/student02/classifier") == {}

    # Revoking removes the token: the same login is refused afterwards.
    assert acr.revoke_student_credentials("nov-2026/") == ["nov-2026-student01"]
    assert "nov-2026-student01" not in fake.scope_maps
    with pytest.raises(docker.errors.APIError):
        engine.login(card["username"], card["password"], registry=fake.login_server, reauth=True)


def test_instructor_login_push_list_and_delete(acr, fake, engine):
    credentials = acr.login()
    assert credentials.username == REFRESH_TOKEN_USER
    assert credentials.registry == fake.login_server
    assert credentials.expires_at is not None
    assert acr.login() is credentials

    uri = acr.ensure_repository("dec-2026/student05/app")
    assert uri == f"{fake.login_server}/dec-2026/student05/app"
    assert push_as(engine, uri, credentials.username, credentials.password) == []

    assert "dec-2026/student05/app" in acr.list_repositories("dec-2026/")
    assert acr.list_tags("dec-2026/student05/app") == ["1"]
    with pytest.raises(RegistryError, match="still holds 1 tag"):
        acr.delete_repository("dec-2026/student05/app")
    assert acr.delete_repository("dec-2026/student05/app", force=True) is True
    assert acr.list_tags("dec-2026/student05/app") == []
    assert acr.delete_repository("dec-2026/student05/app", force=True) is False


def test_a_registry_that_is_not_there_names_the_setting(fake):
    acr = AcrRegistry(settings(fake, registry="nosuch"), credential=EntraToken("entra-instructor"))
    with pytest.raises(RegistryError, match="registry 'nosuch' not found in resource group"):
        acr.ensure_repository("nov-2026/student01/app")


def test_a_refused_entra_token_is_one_line(fake):
    acr = AcrRegistry(settings(fake), credential=EntraToken("expired"))
    with pytest.raises(RegistryError, match="acr: no usable Azure credentials"):
        acr.ensure_repository("nov-2026/student01/app")


def test_missing_credentials_name_the_fix(fake, monkeypatch, tmp_path):
    for variable in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no az, azd or pwsh to fall back on
    acr = AcrRegistry(settings(fake))
    with pytest.raises(RegistryError, match=r"acr: no usable Azure credentials.*az login"):
        acr.login()


def test_invalid_names_are_refused(acr, fake):
    before = len(fake.calls)
    with pytest.raises(RegistryError, match="acr: invalid repository name"):
        acr.ensure_repository("Bad Name")
    assert len(fake.calls) == before


def test_revoking_one_cohort_leaves_a_cohort_whose_name_starts_the_same(acr, fake):
    """nov-2026 and nov-2026-b: revoking the first must not touch the second's tokens
    (named nov-2026-student02 and nov-2026-b-student02)."""
    acr.student_credentials("student02", ["nov-2026/student02/classifier"])
    acr.student_credentials("student02", ["nov-2026-b/student02/classifier"])
    assert acr.revoke_student_credentials("nov-2026/") == ["nov-2026-student02"]
    assert "nov-2026-b-student02" in fake.scope_maps
    assert "nov-2026-student02" not in fake.scope_maps
    assert acr.revoke_student_credentials("nov-2026-b/") == ["nov-2026-b-student02"]
    assert "nov-2026-b-student02" not in fake.scope_maps


def test_login_uses_the_registry_audience_where_arm_tokens_are_disabled(fake):
    """The recommended Azure Policy turns ARM-audience tokens off for registry logins; the
    kit asks Entra ID for containerregistry.azure.net, which every registry accepts."""
    assert fake.arm_audience_allowed is False
    credential = EntraToken("entra-instructor")
    login = AcrRegistry(settings(fake), credential=credential).login()
    assert login.username == REFRESH_TOKEN_USER
    assert (("https://containerregistry.azure.net/.default",), None) in credential.requests


def test_a_named_tenant_is_where_the_token_comes_from(fake):
    tenant = "99999999-8888-7777-6666-555555555555"
    credential = EntraToken("entra-instructor")
    AcrRegistry(settings(fake, tenant_id=tenant), credential=credential).login()
    assert (("https://containerregistry.azure.net/.default",), tenant) in credential.requests

    class HomeTenantOnly(EntraToken):
        """A credential that ignores tenant_id: its token is from another tenant."""

        def get_token(self, *scopes, **kwargs):
            kwargs.pop("tenant_id", None)
            return super().get_token(*scopes, **kwargs)

    with pytest.raises(RegistryError, match="refused the Entra ID token"):
        AcrRegistry(settings(fake, tenant_id=tenant), credential=HomeTenantOnly()).login()


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"service": "other.azurecr.io"}, 400),
        ({"grant_type": "password"}, 400),
        ({"access_token": "entra-instructor|aud=https://management.azure.com|tid=x"}, 401),
        ({"access_token": "someone-else|aud=https://containerregistry.azure.net|tid=x"}, 401),
    ],
)
def test_the_token_service_refuses_what_acr_refuses(fake, change, status):
    form = {
        "grant_type": "access_token",
        "service": fake.login_server,
        "access_token": "entra-instructor|aud=https://containerregistry.azure.net|tid=x",
        **change,
    }
    url = f"{fake.endpoint}/oauth2/exchange"
    answer = requests.post(url, data=form, verify=str(fake.ca_file), timeout=10)
    assert answer.status_code == status


def test_repositories_and_tags_are_listed_across_pages(acr, fake, engine):
    """ACR answers 100 entries a page with a Link to the next; here 2 a page, so three
    repositories and three tags each take two pages, which the SDK must follow."""
    credentials = acr.login()
    repositories = [f"pages-2026/student0{n}/app" for n in (1, 2, 3)]
    for repository in repositories:
        uri = acr.ensure_repository(repository)
        assert push_as(engine, uri, credentials.username, credentials.password) == []
    uri = acr.ensure_repository(repositories[0])
    tiny_image(engine, uri)
    try:
        for tag in ("2", "3"):
            engine.images.get(f"{uri}:1").tag(uri, tag)
            pushed = engine.images.push(
                uri,
                tag=tag,
                auth_config=dict(username=credentials.username, password=credentials.password),
            )
            assert "error" not in pushed.lower()
    finally:
        for tag in ("1", "2", "3"):
            if engine.images.list(f"{uri}:{tag}"):
                engine.images.remove(f"{uri}:{tag}", force=True)
    fake.page_size = 2
    try:
        assert acr.list_repositories("pages-2026/") == repositories
        assert acr.list_tags(repositories[0]) == ["1", "2", "3"]
    finally:
        fake.page_size = 100
        for repository in repositories:
            acr.delete_repository(repository, force=True)


def test_token_names_keep_underscores_as_azure_allows(acr, fake):
    card = acr.student_credentials("ada_l", ["jan_2027/ada_l/classifier"])
    assert card["username"] == "jan_2027-ada_l"
    assert "jan_2027-ada_l" in fake.tokens
    acr.revoke_student_credentials("jan_2027/")
    assert "jan_2027-ada_l" not in fake.tokens


def test_a_repository_holding_only_untagged_manifests_is_deleted(acr, fake, engine):
    credentials = acr.login()
    uri = acr.ensure_repository("dec-2026/student06/app")
    assert push_as(engine, uri, credentials.username, credentials.password) == []
    # `az acr repository untag`: the manifest stays, and so does the storage it costs.
    acr.data.delete_tag("dec-2026/student06/app", "1")
    assert acr.list_tags("dec-2026/student06/app") == []
    assert fake.registry.manifests("dec-2026/student06/app"), "the manifest is still there"
    assert "dec-2026/student06/app" in acr.list_repositories("dec-2026/")

    # No tag left, so no force needed; the repository and its manifest go.
    assert acr.delete_repository("dec-2026/student06/app") is True
    assert acr.list_repositories("dec-2026/student06/") == []
    assert fake.registry.manifests("dec-2026/student06/app") == []
    assert acr.delete_repository("dec-2026/student06/app") is False


def workflow_login(fake, issuer: GitHubIssuer, variables: dict, github, **kw) -> tuple[int, str]:
    """What azure/login with a federated credential and `az acr login` do: GitHub's token
    (audience api://AzureADTokenExchange) as the app's client assertion -> an Entra ID
    token for the registry -> ACR's refresh token. Returns (status, refresh token or why)."""
    tenant, client = variables["AZURE_TENANT_ID"], variables["AZURE_CLIENT_ID"]
    entra = requests.post(
        f"{fake.endpoint}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": issuer.token(github, "api://AzureADTokenExchange", **kw),
            "scope": "https://containerregistry.azure.net/.default",
        },
        verify=str(fake.ca_file),
        timeout=10,
    )
    if entra.status_code != 200:
        return entra.status_code, entra.text
    exchanged = requests.post(
        f"{fake.endpoint}/oauth2/exchange",
        data={
            "grant_type": "access_token",
            "service": fake.login_server,
            "access_token": entra.json()["access_token"],
            "tenant": tenant,
        },
        verify=str(fake.ca_file),
        timeout=10,
    )
    return exchanged.status_code, exchanged.json().get("refresh_token", exchanged.text)


def test_ci_trust_is_an_app_whose_federated_credential_names_the_repositorys_main_branch(
    acr, fake, engine
):
    """--ci github:OWNER/REPO end to end, as the workflow logs in: an app registration and
    its service principal, one federated credential for that subject, AcrPush; no secret.
    Another branch or repository is refused, so is the same run after revoke; a cohort
    whose name starts the same keeps its app."""
    issuer = GitHubIssuer(fake.oidc_issuers)
    github = GitHubRepository.parse("github:acme-ml/student03-docker")
    own = ["may-2027/student03/classifier"]
    variables = acr.ci_trust("student03", own, github)
    assert acr.ci_trust("student03", own, github) == variables  # safe to repeat
    assert variables["AZURE_TENANT_ID"] == fake.tenant
    assert variables["ACR_NAME"] == fake.name
    assert variables["ACR_REPOSITORY"] == own[0]
    assert variables["AZURE_SUBSCRIPTION_ID"] == fake.subscription
    apps = [a for a in fake.applications.values() if "workshop-ci:may-2027/student03/" in a["tags"]]
    assert len(apps) == 1, "a re-run must not register a second app"
    assert [c["subject"] for c in fake.federated[apps[0]["id"]]] == [
        "repo:acme-ml/student03-docker:ref:refs/heads/main"
    ]
    assert len(fake.role_assignments) == 1
    other_cohort = acr.ci_trust("student03", ["may-2027-b/student03/classifier"], github)

    status, refresh = workflow_login(fake, issuer, variables, github)
    assert status == 200, refresh
    uri = f"{fake.login_server}/{own[0]}"
    assert push_as(engine, uri, REFRESH_TOKEN_USER, refresh) == []

    status, refusal = workflow_login(fake, issuer, variables, github, branch="feature")
    assert status == 400
    assert "No matching federated identity record" in refusal
    stranger = GitHubRepository.parse("github:someone-else/student03-docker")
    assert workflow_login(fake, issuer, variables, stranger)[0] == 400

    assert acr.revoke_ci_trust("may-2027/") == ["workshop-ci-may-2027-student03"]
    assert workflow_login(fake, issuer, variables, github)[0] == 400
    assert workflow_login(fake, issuer, other_cohort, github)[0] == 200
    assert acr.revoke_ci_trust("may-2027/") == []
    assert acr.revoke_ci_trust("may-2027-b/") == ["workshop-ci-may-2027-b-student03"]
    assert fake.role_assignments == {}
    assert fake.principals == {}
    acr.delete_repository(own[0], force=True)


def test_ci_trust_without_graph_rights_names_the_role(fake):
    """An identity Graph refuses (an instructor without Application Administrator)."""
    acr = AcrRegistry(settings(fake), credential=EntraToken("entra-instructor"))
    fake.entra_tokens.discard("entra-nobody")
    nobody = AcrRegistry(settings(fake), credential=EntraToken("entra-nobody"))
    github = GitHubRepository.parse("github:acme-ml/repo")
    with pytest.raises(RegistryError, match="Application Administrator"):
        nobody.ci_trust("student01", ["jun-2027/student01/classifier"], github)
    assert acr.revoke_ci_trust("jun-2027/") == []


def test_ci_trust_waits_out_entra_ids_replication_of_what_it_just_made(fake):
    """Graph refuses a service principal for an app made moments ago ("does not reference
    a valid application object"), and its federated credentials and ARM's role assignment
    the same way, until Entra ID has replicated it: each is waited out, not given up."""
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        time.sleep(seconds / 4)  # a quarter of the backoff: the fake replicates in 0.5 s

    acr = AcrRegistry(settings(fake), credential=EntraToken("entra-instructor"), sleep=sleep)
    fake.replication_seconds = 0.5
    try:
        github = GitHubRepository.parse("github:acme-ml/student08-docker")
        variables = acr.ci_trust("student08", ["jul-2027/student08/classifier"], github)
    finally:
        fake.replication_seconds = 0.0
    assert waited, "nothing was refused while replicating"
    app = next(a for a in fake.applications.values() if a["appId"] == variables["AZURE_CLIENT_ID"])
    assert [c["subject"] for c in fake.federated[app["id"]]] == [github.subject]
    assert acr.revoke_ci_trust("jul-2027/")


def test_the_tier_is_named_when_the_class_pushing_at_once_would_be_throttled(acr, fake):
    """Basic takes 100 write operations a minute and 10 Mbps up: 30 students pushing
    Activity 5's image at once are throttled (429s), and the instructor is told first."""
    fake.sku = "Basic"
    try:
        note = acr.capacity(30, 200)
    finally:
        fake.sku = "Premium"
    assert note is not None
    assert "is Basic (100 write operations a minute, 10 Mbps upload)" in note
    assert "30 students" in note
    assert "az acr update --sku Standard" in note
    assert acr.capacity(10, 50) is None  # Premium, a small class, small images: room
