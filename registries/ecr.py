"""AWS Elastic Container Registry through boto3.

Repositories are created scan-on-push, with the configured tag mutability, encryption,
a lifecycle policy and cohort/student tags. Logins come from ``get_authorization_token``
(valid 12 hours) and are refreshed before they lapse; the clock is injectable so that
refresh is testable.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.exceptions
from pydantic import ConfigDict, with_config

from registries.base import (
    GITHUB_ISSUER,
    Credentials,
    GitHubRepository,
    RegistryError,
    check_repository_name,
)

# ECR's own rule (CreateRepository's repositoryName pattern in the service model that
# botocore ships), 2 to 256 characters: separators ".", "_", "__" or a run of "-".
_ECR_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
ECR_NAME = re.compile(rf"^{_ECR_COMPONENT}(?:/{_ECR_COMPONENT})*$")
# Refresh a token this long before it lapses, so no push starts on a dying one.
REFRESH_MARGIN = dt.timedelta(hours=1)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@with_config(ConfigDict(extra="forbid"))
@dataclass
class EcrSettings:
    """How repositories are created (documented in README, 'Registries')."""

    region: str
    profile: str | None = None
    endpoint_url: str | None = None  # the API endpoint (ECR and IAM); tests use moto's
    registry_host: str | None = None  # default: the token's proxyEndpoint (tests: a local one)
    scan_on_push: bool = True
    tag_mutability: str = "MUTABLE"
    encryption: str = "AES256"
    kms_key: str | None = None
    keep_images: int = 20
    tags: dict[str, str] = field(default_factory=dict)


class EcrRegistry:
    """One AWS account and region's ECR."""

    name = "ecr"

    def __init__(
        self,
        settings: EcrSettings,
        *,
        client: Any = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._token: Credentials | None = None
        self._session = boto3.Session(profile_name=settings.profile, region_name=settings.region)
        if client is None:
            client = self._session.client("ecr", endpoint_url=settings.endpoint_url)
        self._client = client
        self._iam_client: Any = None
        # A boto3 Session is not thread-safe (its clients are): push_all and the cohort
        # commands call one adapter from several threads, so clients are made under a lock.
        self._session_lock = threading.Lock()

    @property
    def _iam(self) -> Any:
        with self._session_lock:
            if self._iam_client is None:
                self._iam_client = self._session.client(
                    "iam", endpoint_url=self.settings.endpoint_url
                )
            return self._iam_client

    def _call(self, operation: str, *, client: Any = None, **kwargs: Any) -> Any:
        """One ECR (or IAM) call; credential problems become one line naming the fix."""
        try:
            return getattr(client or self._client, operation)(**kwargs)
        except botocore.exceptions.NoCredentialsError:
            raise RegistryError(
                "ecr: no AWS credentials found: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY), or run 'aws configure'"
            ) from None
        except botocore.exceptions.EndpointConnectionError as exc:
            raise RegistryError(
                f"ecr: cannot reach {exc.kwargs.get('endpoint_url')}: check the region "
                f"({self.settings.region}) and the network"
            ) from None
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {
                "UnrecognizedClientException",
                "InvalidSignatureException",
                "ExpiredTokenException",
                "InvalidClientTokenId",
            }:
                raise RegistryError(
                    f"ecr: AWS refused the credentials ({code}): check AWS_PROFILE or the "
                    "access keys"
                ) from None
            # ECR says AccessDeniedException, IAM says AccessDenied: name what was refused.
            if code in {"AccessDeniedException", "AccessDenied"}:
                service = (client or self._client).meta.service_model.service_name
                raise RegistryError(
                    f"ecr: AWS denied {service}:{exc.operation_name} ({code}): allow that "
                    "action to the identity the kit runs as (see README, 'Registries')"
                ) from None
            raise

    @staticmethod
    def _code(exc: botocore.exceptions.ClientError) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    def check_name(self, repository: str) -> None:
        """Refuse a name ECR would refuse, before any call."""
        check_repository_name(self.name, repository, pattern=ECR_NAME, min_length=2, max_length=256)

    def ensure_repository(self, repository: str, *, student: str | None = None) -> str:
        """Create (or find) the repository; returns its URI. Safe to repeat."""
        self.check_name(repository)
        tags = {**self.settings.tags, **({"student": student} if student else {})}
        encryption: dict[str, str] = {"encryptionType": self.settings.encryption}
        if self.settings.kms_key:
            encryption["kmsKey"] = self.settings.kms_key
        try:
            created = self._call(
                "create_repository",
                repositoryName=repository,
                imageTagMutability=self.settings.tag_mutability,
                imageScanningConfiguration={"scanOnPush": self.settings.scan_on_push},
                encryptionConfiguration=encryption,
                tags=[{"Key": key, "Value": value} for key, value in sorted(tags.items())],
            )
            uri = created["repository"]["repositoryUri"]
        except botocore.exceptions.ClientError as exc:
            if self._code(exc) != "RepositoryAlreadyExistsException":
                raise
            found = self._call("describe_repositories", repositoryNames=[repository])
            existing = found["repositories"][0]
            uri = existing["repositoryUri"]
            # Settings changed in registries.yml reach repositories made before the change.
            if existing.get("imageTagMutability") != self.settings.tag_mutability:
                self._call(
                    "put_image_tag_mutability",
                    repositoryName=repository,
                    imageTagMutability=self.settings.tag_mutability,
                )
            scanning = existing.get("imageScanningConfiguration") or {}
            if scanning.get("scanOnPush") != self.settings.scan_on_push:
                self._call(
                    "put_image_scanning_configuration",
                    repositoryName=repository,
                    imageScanningConfiguration={"scanOnPush": self.settings.scan_on_push},
                )
        if self.settings.registry_host:
            uri = f"{self.settings.registry_host}/{repository}"
        self._call(
            "put_lifecycle_policy",
            repositoryName=repository,
            lifecyclePolicyText=json.dumps(self.lifecycle_policy()),
        )
        return str(uri)

    def lifecycle_policy(self) -> dict[str, Any]:
        """Keep the newest ``keep_images`` images, so a cohort's pushes stop costing money."""
        return {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"keep the newest {self.settings.keep_images} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": self.settings.keep_images,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }

    def login(self) -> Credentials:
        """A docker login from an authorization token, reused until an hour before it lapses."""
        if self._token and not self._token.expires_within(REFRESH_MARGIN, self._clock()):
            return self._token
        data = self._call("get_authorization_token")["authorizationData"][0]
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        expires = data["expiresAt"]
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
        host = self.settings.registry_host or data["proxyEndpoint"].removeprefix(
            "https://"
        ).removeprefix("http://")
        self._token = Credentials(host, username, password, expires)
        return self._token

    def list_repositories(self, prefix: str = "") -> list[str]:
        """Repository names starting with ``prefix``."""
        names: list[str] = []
        for page in self._client.get_paginator("describe_repositories").paginate():
            names += [repo["repositoryName"] for repo in page["repositories"]]
        return sorted(name for name in names if name.startswith(prefix))

    def list_tags(self, repository: str) -> list[str]:
        """Tags of the repository's images (empty when the repository is absent)."""
        self.check_name(repository)
        tags: list[str] = []
        try:
            pages = self._client.get_paginator("list_images").paginate(
                repositoryName=repository, filter={"tagStatus": "TAGGED"}
            )
            for page in pages:
                tags += [image["imageTag"] for image in page["imageIds"] if "imageTag" in image]
        except botocore.exceptions.ClientError as exc:
            if self._code(exc) == "RepositoryNotFoundException":
                return []
            raise
        return sorted(tags)

    def delete_repository(self, repository: str, *, force: bool = False) -> bool:
        """Delete the repository; with ``force`` its images too. False when it was absent."""
        self.check_name(repository)
        try:
            self._call("delete_repository", repositoryName=repository, force=force)
        except botocore.exceptions.ClientError as exc:
            code = self._code(exc)
            if code == "RepositoryNotFoundException":
                return False
            if code == "RepositoryNotEmptyException":
                raise RegistryError(
                    f"ecr: {repository} still holds images: pass force to delete them too"
                ) from None
            raise
        return True

    def _repository_arns(self, student: str, repositories: list[str]) -> list[str]:
        """Each repository made (or found) for the student, as the ARN a policy names."""
        arns = []
        for repository in repositories:
            self.ensure_repository(repository, student=student)
            found = self._call("describe_repositories", repositoryNames=[repository])
            arns.append(str(found["repositories"][0]["repositoryArn"]))
        return arns

    def student_credentials(self, student: str, repositories: list[str]) -> dict[str, Any]:
        """An IAM user that may push and pull these repositories only, and its access key.

        The user lives under the IAM path /workshop/ and is named after the student's path
        (``nov-2026-student01``); a second call replaces the key (the card is rewritten).
        """
        arns = self._repository_arns(student, repositories)
        user = _iam_name(repositories)
        try:
            self._call(
                "create_user",
                client=self._iam,
                UserName=user,
                Path=IAM_PATH,
                Tags=[{"Key": "student", "Value": student}]
                + [{"Key": k, "Value": v} for k, v in sorted(self.settings.tags.items())],
            )
        except botocore.exceptions.ClientError as exc:
            if self._code(exc) != "EntityAlreadyExists":
                raise
        self._call(
            "put_user_policy",
            client=self._iam,
            UserName=user,
            PolicyName=PUSH_POLICY,
            PolicyDocument=json.dumps(push_policy(arns)),
        )
        for key in self._call("list_access_keys", client=self._iam, UserName=user)[
            "AccessKeyMetadata"
        ]:
            self._call(
                "delete_access_key", client=self._iam, UserName=user, AccessKeyId=key["AccessKeyId"]
            )
        key = self._call("create_access_key", client=self._iam, UserName=user)["AccessKey"]
        host = self.login().registry
        return {
            "registry": host,
            "username": user,
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
            "region": self.settings.region,
            "login": f"aws ecr get-login-password --region {self.settings.region} | "
            f"docker login --username AWS --password-stdin {host}",
            "repositories": [f"{host}/{repository}" for repository in repositories],
        }

    def _grants(self, user: str, *, role: bool = False) -> list[str] | None:
        """The repositories a /workshop/ user's (or role's) push policy names, or None."""
        try:
            if role:
                policy = self._call(
                    "get_role_policy", client=self._iam, RoleName=user, PolicyName=PUSH_POLICY
                )
            else:
                policy = self._call(
                    "get_user_policy", client=self._iam, UserName=user, PolicyName=PUSH_POLICY
                )
        except botocore.exceptions.ClientError as exc:
            if self._code(exc) == "NoSuchEntity":
                return None
            raise
        resources = [
            resource
            for statement in _document(policy["PolicyDocument"]).get("Statement", [])
            for resource in _as_list(statement.get("Resource", []))
        ]
        return [r.split(":repository/", 1)[1] for r in resources if ":repository/" in r]

    def capacity(self, students: int, image_mb: float) -> str | None:
        """ECR's limits (PutImage 10, layer uploads hundreds a second per region) hold a class."""
        return None

    def revoke_student_credentials(self, prefix: str) -> list[str]:
        """Delete the /workshop/ IAM users whose push policy grants repositories under
        ``prefix`` (``nov-2026/``) and nothing else: ownership by what a user may do, not
        by its name, so revoking ``nov-2026`` leaves ``nov-2026-b``'s students alone."""
        removed = []
        pages = self._iam.get_paginator("list_users").paginate(PathPrefix=IAM_PATH)
        for page in pages:
            for user in page["Users"]:
                name = user["UserName"]
                granted = self._grants(name)
                if not granted or not all(repo.startswith(prefix) for repo in granted):
                    continue
                keys = self._call("list_access_keys", client=self._iam, UserName=name)
                for key in keys["AccessKeyMetadata"]:
                    self._call(
                        "delete_access_key",
                        client=self._iam,
                        UserName=name,
                        AccessKeyId=key["AccessKeyId"],
                    )
                policies = self._call("list_user_policies", client=self._iam, UserName=name)
                for policy in policies["PolicyNames"]:
                    self._call(
                        "delete_user_policy", client=self._iam, UserName=name, PolicyName=policy
                    )
                self._call("delete_user", client=self._iam, UserName=name)
                removed.append(name)
        return sorted(removed)

    # --- keyless CI (GitHub OIDC) -----------------------------------------------------

    def _github_provider(self) -> str:
        """The account's IAM OIDC provider for GitHub (one per account), made if missing;
        students are set up in parallel, so another thread may make it first."""
        for _ in range(2):
            listed = self._call("list_open_id_connect_providers", client=self._iam)
            for provider in listed["OpenIDConnectProviderList"]:
                if provider["Arn"].endswith(f":oidc-provider/{GITHUB_HOST}"):
                    return str(provider["Arn"])
            try:
                created = self._call(
                    "create_open_id_connect_provider",
                    client=self._iam,
                    Url=GITHUB_ISSUER,
                    ClientIDList=[STS_AUDIENCE],
                    # IAM no longer checks GitHub's thumbprint (it trusts GitHub's CA), but
                    # the API still takes one: GitHub's documented intermediate.
                    ThumbprintList=[GITHUB_THUMBPRINT],
                    Tags=[{"Key": KIT_TAG, "Value": "true"}],
                )
                return str(created["OpenIDConnectProviderArn"])
            except botocore.exceptions.ClientError as exc:
                if self._code(exc) != "EntityAlreadyExists":
                    raise
        raise RegistryError("ecr: the GitHub OIDC provider exists but is not listed: retry")

    def ci_trust(
        self, student: str, repositories: list[str], github: GitHubRepository
    ) -> dict[str, str]:
        """An IAM role that GitHub runs of ``github`` on its branch may assume (through the
        account's OIDC provider, audience sts.amazonaws.com, that ``sub`` exactly) and that
        may push to ``repositories`` only."""
        arns = self._repository_arns(student, repositories)
        provider = self._github_provider()
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{GITHUB_HOST}:aud": STS_AUDIENCE,
                            f"{GITHUB_HOST}:sub": github.subject,
                        }
                    },
                }
            ],
        }
        role = f"{_iam_name(repositories)[: 64 - len(CI_SUFFIX)]}{CI_SUFFIX}"
        try:
            created = self._call(
                "create_role",
                client=self._iam,
                RoleName=role,
                Path=IAM_PATH,
                AssumeRolePolicyDocument=json.dumps(trust),
                Description=f"GitHub Actions of {github.slug} push to {student}'s repositories",
                MaxSessionDuration=3600,
                Tags=[{"Key": "student", "Value": student}, {"Key": "github", "Value": github.slug}]
                + [{"Key": k, "Value": v} for k, v in sorted(self.settings.tags.items())],
            )
            arn = created["Role"]["Arn"]
        except botocore.exceptions.ClientError as exc:
            if self._code(exc) != "EntityAlreadyExists":
                raise
            self._call(
                "update_assume_role_policy",
                client=self._iam,
                RoleName=role,
                PolicyDocument=json.dumps(trust),
            )
            arn = self._call("get_role", client=self._iam, RoleName=role)["Role"]["Arn"]
        self._call(
            "put_role_policy",
            client=self._iam,
            RoleName=role,
            PolicyName=PUSH_POLICY,
            PolicyDocument=json.dumps(push_policy(arns)),
        )
        return {
            "AWS_ROLE_ARN": str(arn),
            "AWS_REGION": self.settings.region,
            "ECR_REPOSITORY": repositories[0],
        }

    def revoke_ci_trust(self, prefix: str) -> list[str]:
        """Delete the /workshop/ roles whose push policy grants only repositories under
        ``prefix``; then the GitHub OIDC provider, when the kit made it and no role in the
        account trusts it any more."""
        removed = []
        remaining_trust = False
        for page in self._iam.get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                name = role["RoleName"]
                granted = self._grants(name, role=True) if role["Path"] == IAM_PATH else None
                if granted and all(repo.startswith(prefix) for repo in granted):
                    policies = self._call("list_role_policies", client=self._iam, RoleName=name)
                    for policy in policies["PolicyNames"]:
                        self._call(
                            "delete_role_policy", client=self._iam, RoleName=name, PolicyName=policy
                        )
                    self._call("delete_role", client=self._iam, RoleName=name)
                    removed.append(name)
                elif GITHUB_HOST in json.dumps(_document(role.get("AssumeRolePolicyDocument", {}))):
                    remaining_trust = True
        if removed and not remaining_trust:
            listed = self._call("list_open_id_connect_providers", client=self._iam)
            for provider in listed["OpenIDConnectProviderList"]:
                arn = provider["Arn"]
                if not arn.endswith(f":oidc-provider/{GITHUB_HOST}"):
                    continue
                tags = self._call(
                    "list_open_id_connect_provider_tags",
                    client=self._iam,
                    OpenIDConnectProviderArn=arn,
                )["Tags"]
                if {"Key": KIT_TAG, "Value": "true"} in tags:
                    self._call(
                        "delete_open_id_connect_provider",
                        client=self._iam,
                        OpenIDConnectProviderArn=arn,
                    )
                    removed.append(arn.rsplit(":", 1)[-1])
        return sorted(removed)


IAM_PATH = "/workshop/"
PUSH_POLICY = "workshop-ecr-push"
CI_SUFFIX = "-github"
KIT_TAG = "workshop-kit"
STS_AUDIENCE = "sts.amazonaws.com"
GITHUB_HOST = GITHUB_ISSUER.removeprefix("https://")  # how IAM names the provider and keys
GITHUB_THUMBPRINT = "6938fd4d98bab03faadb97b34396831e3780aea1"


def _document(document: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: a dict, or URL-encoded JSON undecoded."""
    if isinstance(document, str):
        return dict(json.loads(urllib.parse.unquote(document)))
    return dict(document)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# What `docker push` and `docker pull` need on a repository (ECR's documented push policy).
_PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:CompleteLayerUpload",
    "ecr:DescribeImages",
    "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload",
    "ecr:ListImages",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
]


def push_policy(repository_arns: list[str]) -> dict[str, Any]:
    """An IAM policy allowing a docker login, and push/pull on these repositories only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Action": _PUSH_ACTIONS, "Resource": sorted(repository_arns)},
        ],
    }


def _iam_name(repositories: list[str]) -> str:
    prefixes = {name.rpartition("/")[0] or name for name in repositories}
    if len(prefixes) != 1:
        raise RegistryError(
            f"ecr: one IAM user covers one student's path, got {sorted(prefixes)}: pass "
            "repositories under one path (e.g. nov-2026/student01/...)"
        )
    return re.sub(r"[^A-Za-z0-9-]", "-", prefixes.pop())[:64]
