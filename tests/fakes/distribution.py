"""A real CNCF distribution registry (Debian's ``docker-registry``) as a local process.

The data plane behind every cloud fake: images really are pushed to it by the Docker
engine. It listens on 127.0.0.1, which the engine treats as an insecure (plain HTTP)
registry, and either lets everyone in or delegates to a token server (``token_auth``),
as ACR does.
"""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from registries.local import MANIFEST_TYPES
from workshop.labcloud import pki


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TokenAuth:
    realm: str
    service: str
    issuer: str
    certificate: Path


class TokenSigner:
    """Signs the bearer tokens a registry with token auth takes (ES256, the certificate in
    x5c, as distribution's token auth verifies them against its rootcertbundle)."""

    def __init__(self, directory: Path, issuer: str) -> None:
        self.issuer = issuer
        self._key = pki.certificate_authority(f"{issuer} token signer")
        directory.mkdir(parents=True, exist_ok=True)
        self.certificate = directory / "signer.crt"
        self.certificate.write_bytes(self._key.public)
        self._x5c = base64.b64encode(
            x509.load_pem_x509_certificate(self._key.public).public_bytes(
                serialization.Encoding.DER
            )
        ).decode()

    def auth(self, realm: str, service: str) -> TokenAuth:
        """The registry's side: where to get a token, and whose signature to trust."""
        return TokenAuth(realm, service, self.issuer, self.certificate)

    def sign(self, audience: str, claims: dict[str, Any], lifetime: dt.timedelta) -> str:
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": audience,
            "iat": now,
            "nbf": now - 5,
            "exp": now + int(lifetime.total_seconds()),
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(
            payload, self._key.private, algorithm="ES256", headers={"x5c": [self._x5c]}
        )

    def verify(self, token: str, audience: str) -> dict[str, Any] | None:
        """The claims of a token this signer made for ``audience`` (None: not one)."""
        try:
            key = x509.load_pem_x509_certificate(self._key.public).public_key()
            return jwt.decode(token, key, algorithms=["ES256"], audience=audience)  # type: ignore[arg-type]
        except jwt.PyJWTError:
            return None


class Distribution:
    """``docker-registry serve`` on a free port, its storage under ``root``."""

    def __init__(
        self,
        root: Path,
        token_auth: TokenAuth | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.root = root
        self.port = free_port()
        self.token_auth = token_auth
        # One login (user, password) the registry demands over basic auth, as ECR does.
        self.basic_auth = basic_auth
        self.process: subprocess.Popen[bytes] | None = None
        # With token auth: a full-access bearer for one repository (None: the catalog).
        self.bearer: Callable[[str | None], str] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Distribution:
        binary = shutil.which("docker-registry")
        assert binary, "docker-registry is missing: run 'make setup'"
        config: dict = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.address},
        }
        if self.token_auth:
            config["auth"] = {
                "token": {
                    "realm": self.token_auth.realm,
                    "service": self.token_auth.service,
                    "issuer": self.token_auth.issuer,
                    "rootcertbundle": str(self.token_auth.certificate),
                }
            }
        self.root.mkdir(parents=True, exist_ok=True)
        if self.basic_auth:
            (self.root / "htpasswd").write_text(pki.htpasswd_line(*self.basic_auth))
            config["auth"] = {"htpasswd": {"realm": "fake", "path": str(self.root / "htpasswd")}}
        (self.root / "config.yml").write_text(yaml.safe_dump(config))
        log = (self.root / "registry.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "serve", str(self.root / "config.yml")], stdout=log, stderr=log
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://{self.address}/v2/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not start: see {self.root / 'registry.log'}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    # --- reading what was pushed (used by the fakes and by assertions) -----------------

    def _get(
        self, method: str, path: str, repository: str | None = None, accept: str | None = None
    ) -> requests.Response:
        headers = {"Accept": accept} if accept else {}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer(repository)}"
        url = f"http://{self.address}{path}"
        return requests.request(method, url, headers=headers, auth=self.basic_auth, timeout=10)

    def repositories(self) -> list[str]:
        """Every repository in storage, tagged or not (what ACR's catalog lists)."""
        response = self._get("GET", "/v2/_catalog?n=1000")
        response.raise_for_status()
        return list(response.json().get("repositories") or [])

    def _storage(self, repository: str) -> Path:
        return self.root / "data/docker/registry/v2/repositories" / repository

    def manifests(self, repository: str) -> list[str]:
        """Digests of every manifest in the repository, tagged or not."""
        revisions = self._storage(repository) / "_manifests/revisions/sha256"
        if not revisions.is_dir():
            return []
        return sorted(f"sha256:{path.name}" for path in revisions.glob("*"))

    def untag(self, repository: str, tag: str) -> bool:
        """Drop a tag and keep its manifest, as `az acr repository untag` does."""
        link = self._storage(repository) / "_manifests/tags" / tag
        if not link.is_dir():
            return False
        shutil.rmtree(link)
        return True

    def catalog(self) -> list[str]:
        """Repositories that hold at least one tag."""
        response = self._get("GET", "/v2/_catalog?n=1000")
        response.raise_for_status()
        return [name for name in response.json().get("repositories") or [] if self.tags(name)]

    def digest(self, repository: str, tag: str) -> str | None:
        response = self._get(
            "HEAD", f"/v2/{repository}/manifests/{tag}", repository, accept=MANIFEST_TYPES
        )
        return response.headers.get("Docker-Content-Digest") if response.ok else None

    def tags(self, repository: str) -> dict[str, str]:
        response = self._get("GET", f"/v2/{repository}/tags/list", repository)
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        found = {tag: self.digest(repository, tag) for tag in response.json().get("tags") or []}
        return {tag: digest for tag, digest in found.items() if digest}

    def delete(self, repository: str) -> None:
        """The repository goes, untagged manifests included (distribution has no call for
        that; its catalog reads the storage, so removing the directory removes it)."""
        for digest in set(self.tags(repository).values()):
            self._get("DELETE", f"/v2/{repository}/manifests/{digest}", repository)
        shutil.rmtree(self._storage(repository), ignore_errors=True)
