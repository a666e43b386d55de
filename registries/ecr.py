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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.exceptions

from registries.base import Credentials, RegistryError, check_repository_name

# ECR's own rule (CreateRepository's repositoryName pattern), 2 to 256 characters.
ECR_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
# Refresh a token this long before it lapses, so no push starts on a dying one.
REFRESH_MARGIN = dt.timedelta(hours=1)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class EcrSettings:
    """How repositories are created (documented in README, 'Registries')."""

    region: str
    profile: str | None = None
    endpoint_url: str | None = None
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
        if client is None:
            session = boto3.Session(profile_name=settings.profile, region_name=settings.region)
            client = session.client("ecr", endpoint_url=settings.endpoint_url)
        self._client = client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """One ECR call; credential problems become one line naming the fix."""
        try:
            return getattr(self._client, operation)(**kwargs)
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
                "AccessDeniedException",
            }:
                raise RegistryError(
                    f"ecr: AWS refused the credentials ({code}): check AWS_PROFILE or the "
                    "access keys, and that they allow ecr:* in this account"
                ) from None
            raise

    @staticmethod
    def _code(exc: botocore.exceptions.ClientError) -> str:
        return str(exc.response.get("Error", {}).get("Code", ""))

    def ensure_repository(self, repository: str, *, student: str | None = None) -> str:
        """Create (or find) the repository; returns its URI. Safe to repeat."""
        check_repository_name(self.name, repository, pattern=ECR_NAME, min_length=2, max_length=256)
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
            uri = found["repositories"][0]["repositoryUri"]
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
        host = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
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
        check_repository_name(self.name, repository, pattern=ECR_NAME, min_length=2, max_length=256)
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
        check_repository_name(self.name, repository, pattern=ECR_NAME, min_length=2, max_length=256)
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
