"""The ECR adapter against moto's ECR server over real HTTP, with boto3 as the client."""

from __future__ import annotations

import datetime as dt
import json
import re

import boto3
import pytest
from botocore.stub import Stubber
from moto.server import ThreadedMotoServer

from registries.base import GitHubRepository, RegistryError
from registries.ecr import EcrRegistry, EcrSettings
from tests.fakes.distribution import free_port
from tests.workshop.labcloud.test_cloud import push_errors, tiny_image


@pytest.fixture(scope="module")
def endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def client(endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("ecr", region_name="eu-west-1", endpoint_url=endpoint)


def settings(**overrides) -> EcrSettings:
    return EcrSettings(region="eu-west-1", tags={"cohort": "nov-2026"}, **overrides)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_ensure_repository_creates_once_with_the_settings(client):
    ecr = EcrRegistry(settings(tag_mutability="IMMUTABLE", keep_images=5), client=client)
    uri = ecr.ensure_repository("nov-2026/student01/classifier", student="student01")
    assert uri.endswith(".dkr.ecr.eu-west-1.amazonaws.com/nov-2026/student01/classifier")
    assert ecr.ensure_repository("nov-2026/student01/classifier", student="student01") == uri

    repo = client.describe_repositories(repositoryNames=["nov-2026/student01/classifier"])[
        "repositories"
    ][0]
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["encryptionConfiguration"]["encryptionType"] == "AES256"
    tags = client.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"cohort": "nov-2026", "student": "student01"}
    policy = client.get_lifecycle_policy(repositoryName="nov-2026/student01/classifier")
    assert '"countNumber": 5' in policy["lifecyclePolicyText"]


def test_changed_mutability_and_scanning_reach_an_existing_repository(client):
    """Settings are applied to repositories made before they changed, not only on creation."""
    EcrRegistry(settings(), client=client).ensure_repository("nov-2026/s10/app")
    changed = settings(tag_mutability="IMMUTABLE", scan_on_push=False)
    EcrRegistry(changed, client=client).ensure_repository("nov-2026/s10/app")
    repo = client.describe_repositories(repositoryNames=["nov-2026/s10/app"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": False}


def test_a_changed_keep_images_reaches_an_existing_repository(client):
    """The lifecycle rule is written on every ensure, not only on creation."""
    EcrRegistry(settings(keep_images=5), client=client).ensure_repository("nov-2026/s09/app")
    EcrRegistry(settings(keep_images=2), client=client).ensure_repository("nov-2026/s09/app")
    policy = json.loads(
        client.get_lifecycle_policy(repositoryName="nov-2026/s09/app")["lifecyclePolicyText"]
    )
    assert [rule["selection"]["countNumber"] for rule in policy["rules"]] == [2]


def test_list_and_delete(client):
    ecr = EcrRegistry(settings(), client=client)
    for name in ("dec-2026/a/app", "dec-2026/b/app", "other/app"):
        ecr.ensure_repository(name)
    assert ecr.list_repositories("dec-2026/") == ["dec-2026/a/app", "dec-2026/b/app"]
    assert ecr.list_tags("dec-2026/a/app") == []
    assert ecr.delete_repository("dec-2026/a/app", force=True) is True
    assert ecr.delete_repository("dec-2026/a/app", force=True) is False
    assert ecr.list_repositories("dec-2026/") == ["dec-2026/b/app"]
    assert ecr.list_tags("dec-2026/a/app") == []


def test_login_decodes_the_token_and_refreshes_it_before_it_lapses(client):
    calls = []
    client.meta.events.register(
        "before-call.ecr.GetAuthorizationToken", lambda **kwargs: calls.append(1)
    )
    # moto's token lapses at a fixed instant; put the clock well before it.
    expires = client.get_authorization_token()["authorizationData"][0]["expiresAt"]
    calls.clear()
    clock = Clock(expires - dt.timedelta(hours=11))
    ecr = EcrRegistry(settings(), client=client, clock=clock)

    first = ecr.login()
    assert first.username == "AWS"
    assert first.password
    assert first.registry.endswith(".dkr.ecr.eu-west-1.amazonaws.com")
    assert first.password not in repr(first)
    assert ecr.login() is first
    assert len(calls) == 1, "a valid token is reused"

    clock.now = expires - dt.timedelta(minutes=30)  # inside the refresh margin
    ecr.login()
    assert len(calls) == 2, "a token about to lapse is refreshed"


@pytest.mark.parametrize(
    "name",
    ["Upper/case", "a", "trailing-/x", "double//slash", "x" * 257, "sp ace", "a___b", "a_-b"],
)
def test_invalid_repository_names_are_refused_before_any_call(client, name):
    calls = []
    client.meta.events.register("before-call.ecr.*", lambda **kwargs: calls.append(1))
    ecr = EcrRegistry(settings(), client=client)
    with pytest.raises(RegistryError, match="ecr: invalid repository name"):
        ecr.ensure_repository(name)
    assert calls == []


def test_names_by_ecrs_own_pattern_are_accepted(client):
    """The service model's pattern (botocore's copy of AWS's): "__" and runs of "-"
    separate. (moto still checks an older, stricter pattern, so no call is made here.)"""
    ecr = EcrRegistry(settings(), client=client)
    model = client.meta.service_model.shape_for("RepositoryName").metadata["pattern"]
    for name in ("nov-2026/student01/a__b", "a--b", "a---b/c.d_e", "ml/model-v2"):
        assert re.fullmatch(model, name)
        ecr.check_name(name)
    for name in ("a___b", "a_-b", "Upper/case"):
        assert not re.fullmatch(model, name)


def test_missing_credentials_name_the_fix(endpoint, monkeypatch, tmp_path):
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ecr = EcrRegistry(settings(endpoint_url=endpoint))
    with pytest.raises(RegistryError, match="ecr: no AWS credentials found: set AWS_PROFILE"):
        ecr.login()


def test_student_credentials_are_an_iam_user_limited_to_their_repositories(client, endpoint):
    ecr = EcrRegistry(settings(endpoint_url=endpoint))
    repositories = ["jan-2027/student01/classifier", "jan-2027/student01/gateway"]
    card = ecr.student_credentials("student01", repositories)
    again = ecr.student_credentials("student01", repositories)
    assert card["username"] == "jan-2027-student01"
    assert again["aws_access_key_id"] != card["aws_access_key_id"], "a re-run issues a new key"
    assert card["registry"].endswith(".dkr.ecr.eu-west-1.amazonaws.com")
    assert [uri.split("/", 1)[1] for uri in card["repositories"]] == repositories

    iam = boto3.client("iam", region_name="eu-west-1", endpoint_url=endpoint)
    keys = iam.list_access_keys(UserName="jan-2027-student01")["AccessKeyMetadata"]
    assert [key["AccessKeyId"] for key in keys] == [again["aws_access_key_id"]]
    policy = iam.get_user_policy(UserName="jan-2027-student01", PolicyName="workshop-ecr-push")
    statements = policy["PolicyDocument"]["Statement"]
    arns = [
        client.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryArn"]
        for name in repositories
    ]
    assert statements[1]["Resource"] == sorted(arns)
    assert "ecr:PutImage" in statements[1]["Action"]

    # The student's own key logs in (moto does not evaluate IAM policies, so the scoping
    # itself is asserted on the policy above).
    student = boto3.client(
        "ecr",
        region_name="eu-west-1",
        endpoint_url=endpoint,
        aws_access_key_id=again["aws_access_key_id"],
        aws_secret_access_key=again["aws_secret_access_key"],
    )
    assert student.get_authorization_token()["authorizationData"]

    assert ecr.revoke_student_credentials("jan-2027/") == ["jan-2027-student01"]
    assert ecr.revoke_student_credentials("jan-2027/") == []
    assert [u["UserName"] for u in iam.list_users(PathPrefix="/workshop/")["Users"]] == []


def test_revoking_one_cohort_leaves_a_cohort_whose_name_starts_the_same(client, endpoint):
    """nov-2026 and nov-2026-b: revoking the first must not touch the second's students
    (their IAM users are named nov-2026-student01 and nov-2026-b-student01)."""
    ecr = EcrRegistry(settings(endpoint_url=endpoint))
    ecr.student_credentials("student01", ["nov-2026/student01/classifier"])
    ecr.student_credentials("student01", ["nov-2026-b/student01/classifier"])
    assert ecr.revoke_student_credentials("nov-2026/") == ["nov-2026-student01"]
    iam = boto3.client("iam", region_name="eu-west-1", endpoint_url=endpoint)
    left = [u["UserName"] for u in iam.list_users(PathPrefix="/workshop/")["Users"]]
    assert left == ["nov-2026-b-student01"]
    assert ecr.revoke_student_credentials("nov-2026-b/") == ["nov-2026-b-student01"]


def test_iam_access_denied_names_the_refused_action(client):
    """IAM answers AccessDenied (ECR says AccessDeniedException): one line naming the
    action to allow, not a traceback. The refusal is botocore's own, from its stubber."""
    ecr = EcrRegistry(settings(), client=client)
    iam = ecr._iam
    with Stubber(iam) as stub:
        stub.add_client_error(
            "create_user", service_error_code="AccessDenied", http_status_code=403
        )
        with pytest.raises(RegistryError) as refused:
            ecr.student_credentials("student01", ["jan-2027/student01/classifier"])
    assert "AWS denied iam:CreateUser (AccessDenied)" in str(refused.value)
    assert "ecr:*" not in str(refused.value)


def test_the_ecr_registry_stand_in_refuses_what_ecr_refuses(aws, engine):
    """No login, or a login GetAuthorizationToken did not hand out: refused; the adapter's
    login (the decoded token) pushes. Without this, the fake could not catch a bad login."""
    uri = f"{aws['backing'].address}/auth-check/tiny"
    tiny_image(engine, uri)
    try:
        assert push_errors(engine, uri, None), "an anonymous push must be refused"
        wrong = {"username": "AWS", "password": "not-the-token"}
        assert push_errors(engine, uri, wrong), "a made-up token must be refused"
        ecr = EcrRegistry(
            EcrSettings(
                region="eu-west-1",
                endpoint_url=aws["endpoint"],
                registry_host=aws["backing"].address,
            )
        )
        login = ecr.login()
        right = {"username": login.username, "password": login.password}
        assert push_errors(engine, uri, right) == []
    finally:
        engine.images.remove(f"{uri}:1", force=True)


def test_ci_trust_is_a_role_for_one_github_repository_on_main(client, endpoint):
    """--ci github:OWNER/REPO: the account's GitHub OIDC provider (made once, shared), a
    role whose trust names GitHub's audience and that repository's main branch exactly,
    allowed to push to the student's repositories only; removed by cohort."""
    ecr = EcrRegistry(settings(endpoint_url=endpoint))
    iam = boto3.client("iam", region_name="eu-west-1", endpoint_url=endpoint)
    github = GitHubRepository.parse("github:acme-ml/student01-docker")
    repositories = ["mar-2027/student01/classifier"]
    variables = ecr.ci_trust("student01", repositories, github)
    again = ecr.ci_trust("student01", repositories, github)  # safe to repeat
    assert variables == again
    assert variables["AWS_ROLE_ARN"].endswith(":role/workshop/mar-2027-student01-github")
    assert variables["ECR_REPOSITORY"] == "mar-2027/student01/classifier"
    assert variables["AWS_REGION"] == "eu-west-1"

    providers = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert [p["Arn"].rsplit("/", 1)[1] for p in providers] == [
        "token.actions.githubusercontent.com"
    ]
    described = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=providers[0]["Arn"])
    assert described["ClientIDList"] == ["sts.amazonaws.com"]

    role = iam.get_role(RoleName="mar-2027-student01-github")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    statement = trust["Statement"][0]
    assert statement["Principal"] == {"Federated": providers[0]["Arn"]}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": (
            "repo:acme-ml/student01-docker:ref:refs/heads/main"
        ),
    }
    policy = iam.get_role_policy(
        RoleName="mar-2027-student01-github", PolicyName="workshop-ecr-push"
    )
    arn = client.describe_repositories(repositoryNames=repositories)["repositories"][0]
    assert policy["PolicyDocument"]["Statement"][1]["Resource"] == [arn["repositoryArn"]]

    # Another cohort whose name starts the same, and a role the kit did not make that
    # trusts the provider too: both survive mar-2027's revoke, and so does the provider.
    ecr.ci_trust("student01", ["mar-2027-b/student01/classifier"], github)
    iam.create_role(RoleName="their-own-deploy-role", AssumeRolePolicyDocument=json.dumps(trust))
    assert ecr.revoke_ci_trust("mar-2027/") == ["mar-2027-student01-github"]
    left = {r["RoleName"] for r in iam.list_roles()["Roles"]}
    assert {"mar-2027-b-student01-github", "their-own-deploy-role"} <= left
    assert "mar-2027-student01-github" not in left
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]

    # Once nothing trusts the provider the kit made, it goes too; a repeat removes nothing.
    iam.delete_role(RoleName="their-own-deploy-role")
    assert ecr.revoke_ci_trust("mar-2027-b/") == [
        "mar-2027-b-student01-github",
        "oidc-provider/token.actions.githubusercontent.com",
    ]
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == []
    assert ecr.revoke_ci_trust("mar-2027-b/") == []


@pytest.mark.parametrize(
    "text",
    [
        "acme/repo",
        "gitlab:acme/repo",
        "github:acme",
        "github:-acme/repo",
        "github:a--b/repo",
        "github:acme/re po",
        "github:acme/..",
        "github:" + "a" * 40 + "/repo",
    ],
)
def test_a_ci_repository_github_would_refuse_is_refused_naming_the_form(text):
    with pytest.raises(RegistryError, match="github:OWNER/REPO"):
        GitHubRepository.parse(text)
