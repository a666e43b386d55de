"""The three cloud registries as local servers, ready for the adapters (tests and bench).

Each is the wire-protocol fake in front of a real distribution registry: moto's ECR (and
IAM) server, the Artifact Registry server, and the ACR server; the adapters reach them
with the real SDKs and the Docker engine pushes to them for real.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
from azure.core.credentials import AccessToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.server import ThreadedMotoServer

from registries.acr import AcrRegistry, AcrSettings
from registries.artifact import ArtifactRegistry, ArtifactSettings
from registries.base import GITHUB_ISSUER, GitHubRepository
from registries.ecr import EcrRegistry, EcrSettings
from tests.fakes.acr import AcrServer
from tests.fakes.artifact_registry import ArtifactRegistryServer
from tests.fakes.distribution import Distribution, free_port

SERVICE_ACCOUNT = "kit@ml-workshop.iam.gserviceaccount.com"
ENTRA_TOKEN = "entra-instructor"
HOME_TENANT = "11111111-2222-3333-4444-555555555555"
# The registry login moto's GetAuthorizationToken hands out for its default account; the
# distribution registry standing in for ECR's demands it (an anonymous push is refused).
MOTO_ECR_LOGIN = ("AWS", "123456789012-auth-token")


class EntraToken:
    """Stands in for Entra ID: a TokenCredential whose tokens carry the audience they were
    asked for (the scope less "/.default") and the tenant that issued them, as real Entra
    ID tokens do in their aud and tid claims; the fakes check both."""

    def __init__(self, token: str = ENTRA_TOKEN, tenant: str = HOME_TENANT) -> None:
        self.token = token
        self.tenant = tenant
        self.requests: list[tuple[tuple[str, ...], str | None]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        tenant = kwargs.get("tenant_id") or self.tenant
        self.requests.append((scopes, kwargs.get("tenant_id")))
        audience = scopes[0].removesuffix("/.default") if scopes else ""
        return AccessToken(f"{self.token}|aud={audience}|tid={tenant}", int(time.time()) + 3600)


class GitHubIssuer:
    """Signs tokens as GitHub's OIDC issuer does for a workflow run (a key of our own,
    which the fake's STS is told to trust in place of GitHub's published one)."""

    def __init__(self, trusted: dict[str, Any]) -> None:
        """``trusted``: a fake's issuer -> public key table, which this issuer joins."""
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        trusted[GITHUB_ISSUER] = self.key.public_key()

    def token(self, github: GitHubRepository, audience: str, branch: str = "main") -> str:
        now = int(time.time())
        claims = {
            "iss": GITHUB_ISSUER,
            "aud": audience,
            "sub": f"repo:{github.slug}:ref:refs/heads/{branch}",
            "repository": github.slug,
            "ref": f"refs/heads/{branch}",
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode(claims, self.key, algorithm="RS256")


def service_account_key(directory: Path, fake: ArtifactRegistryServer) -> Path:
    """A service-account key file whose token_uri is the fake's, registered with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    fake.service_accounts[SERVICE_ACCOUNT] = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fake.owners.add(f"serviceAccount:{SERVICE_ACCOUNT}")  # the kit's account owns the project
    path = directory / "key.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "ml-workshop",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": SERVICE_ACCOUNT,
                "client_id": "1",
                "token_uri": f"{fake.endpoint}/token",
            }
        )
    )
    path.chmod(0o600)
    return path


def acr_server(root: Path) -> AcrServer:
    server = AcrServer(
        root,
        subscription="00000000-1111-2222-3333-444444444444",
        resource_group="ml-workshop",
        name="mlworkshop",
    )
    server.entra_tokens.add(ENTRA_TOKEN)
    return server


def acr_settings(server: AcrServer, **overrides: Any) -> AcrSettings:
    values: dict[str, Any] = {
        "subscription_id": server.subscription,
        "resource_group": server.resource_group,
        "registry": server.name,
        "arm_endpoint": server.endpoint,
        "data_endpoint": server.endpoint,
        "ca_file": str(server.ca_file),
        "graph_endpoint": server.endpoint,
        "poll_seconds": 0,
        **overrides,
    }
    return AcrSettings(**values)


@contextlib.contextmanager
def cloud_registries(root: str | Path) -> Iterator[dict[str, Any]]:
    """Fresh ECR, Artifact Registry and ACR adapters on fresh local servers."""
    root = Path(root)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    with contextlib.ExitStack() as stack:
        port = free_port()
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        stack.callback(moto.stop)
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            os.environ.setdefault(variable, "testing")
        ecr_data = Distribution(root / "ecr", basic_auth=MOTO_ECR_LOGIN).start()
        stack.callback(ecr_data.stop)
        gcr_data = Distribution(root / "gcr")
        artifact = ArtifactRegistryServer(gcr_data).start()
        stack.callback(artifact.stop)
        (root / "gcp").mkdir(parents=True)
        key = service_account_key(root / "gcp", artifact)
        (root / "acr").mkdir(parents=True)
        acr = acr_server(root / "acr").start()
        stack.callback(acr.stop)
        yield {
            "ecr": EcrRegistry(
                EcrSettings(
                    region="eu-west-1",
                    endpoint_url=f"http://127.0.0.1:{port}",
                    registry_host=ecr_data.address,
                )
            ),
            "gcr": ArtifactRegistry(
                ArtifactSettings(
                    project="ml-workshop",
                    location="europe-west1",
                    credentials_file=str(key),
                    endpoint=artifact.endpoint,
                    iam_endpoint=artifact.endpoint,
                    registry_host=gcr_data.address,
                )
            ),
            "acr": AcrRegistry(acr_settings(acr), credential=EntraToken()),
        }
