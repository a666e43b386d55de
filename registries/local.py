"""The classroom registry (CNCF distribution) through the OCI distribution API.

There is no SDK for the distribution API's catalog, tags and manifest deletion, so this
adapter speaks it with ``requests``: a handful of documented endpoints
(https://distribution.github.io/distribution/spec/api/).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from registries.base import Credentials, GitHubRepository, RegistryError, check_repository_name

# Every manifest type a tag may point at; the registry returns the digest of the one it has.
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
TIMEOUT = 30


class LocalRegistry:
    """A distribution registry reached over HTTPS with basic auth (the lab cloud's, or yours)."""

    name = "local"

    def __init__(
        self,
        address: str,
        username: str,
        password: str,
        ca_file: str | None = None,
        *,
        student_password: Callable[[str], str | None] | None = None,
        cohort: str | None = None,
    ) -> None:
        """``student_password(login)`` gives a student's classroom password (None when not
        on the roster); without it the registry hands out no student logins."""
        self.address = address
        self._session = requests.Session()
        self._session.auth = (username, password)
        # Passed on every request: a session-level value loses to REQUESTS_CA_BUNDLE.
        self._verify: str | bool = ca_file if ca_file else True
        self._credentials = Credentials(address, username, password)
        self._student_password = student_password
        self.cohort = cohort

    def _request(self, method: str, path: str, **kwargs: object) -> requests.Response:
        url = f"https://{self.address}{path}"
        try:
            response = self._session.request(
                method,
                url,
                timeout=TIMEOUT,
                verify=self._verify,
                **kwargs,  # type: ignore[arg-type]
            )
        except requests.exceptions.SSLError:
            raise RegistryError(
                f"local: https://{self.address} has a certificate we do not trust: pass the "
                "registry's CA (the lab cloud keeps it in state/<cohort>/registry/ca.crt)"
            ) from None
        except requests.exceptions.ConnectionError:
            raise RegistryError(
                f"local: cannot reach https://{self.address}: is the registry up? "
                "('workshop cloud status')"
            ) from None
        if response.status_code == 401:
            raise RegistryError(
                f"local: https://{self.address} refused the login of "
                f"{self._credentials.username!r}: check the registry credentials"
            )
        return response

    def check_name(self, repository: str) -> None:
        """Refuse a name the distribution registry would refuse."""
        check_repository_name(self.name, repository)

    def ensure_repository(self, repository: str, *, student: str | None = None) -> str:
        """Distribution creates repositories on first push: only the name is checked."""
        check_repository_name(self.name, repository)
        return f"{self.address}/{repository}"

    def login(self) -> Credentials:
        """The classroom registry's basic-auth login (it does not expire)."""
        self._request("GET", "/v2/").raise_for_status()
        return self._credentials

    def list_repositories(self, prefix: str = "") -> list[str]:
        """Repositories from /v2/_catalog, following its pagination links."""
        names: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            response = self._request("GET", path)
            response.raise_for_status()
            names += response.json().get("repositories") or []
            next_link = response.links.get("next", {}).get("url")
            path = next_link if next_link and next_link.startswith("/") else None
        return sorted(name for name in names if name.startswith(prefix))

    def list_tags(self, repository: str) -> list[str]:
        """Tags of ``repository``; empty when it is unknown or holds none."""
        check_repository_name(self.name, repository)
        response = self._request("GET", f"/v2/{repository}/tags/list")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return sorted(response.json().get("tags") or [])

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest a tag (or digest) resolves to, or None when it is absent."""
        response = self._request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_TYPES}
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.headers["Docker-Content-Digest"]

    def delete_repository(self, repository: str, *, force: bool = False) -> bool:
        """Delete every manifest of ``repository`` (its tags go with them).

        The registry keeps an empty repository in its catalog until garbage collection;
        what students see (tags, pulls) is gone at once.
        """
        tags = self.list_tags(repository)
        if not tags:
            return False
        if not force:
            raise RegistryError(
                f"local: {repository} still holds {len(tags)} tag(s): pass force to delete them"
            )
        digests = {self.manifest_digest(repository, tag) for tag in tags} - {None}
        for digest in sorted(d for d in digests if d):
            response = self._request("DELETE", f"/v2/{repository}/manifests/{digest}")
            if response.status_code not in (202, 404):
                raise RegistryError(
                    f"local: deleting {repository}@{digest} failed with HTTP "
                    f"{response.status_code}: {response.text[:120]}"
                )
        return True

    def student_credentials(self, student: str, repositories: list[str]) -> dict[str, Any]:
        """The student's own classroom login (htpasswd cannot limit it to their repositories)."""
        for repository in repositories:
            check_repository_name(self.name, repository)
        if self._student_password is None:
            raise RegistryError(
                "local: student logins exist only for a lab cloud cohort's registry"
            )
        password = self._student_password(student)
        if password is None:
            raise RegistryError(
                f"local: {student} is not on cohort {self.cohort}'s roster: add them with "
                f"'workshop cloud up --cohort {self.cohort} --students N'"
            )
        return {
            "registry": self.address,
            "username": student,
            "password": password,
            "scoped": False,
            "repositories": [f"{self.address}/{repository}" for repository in repositories],
        }

    def capacity(self, students: int, image_mb: float) -> str | None:
        """A registry server of the classroom's own: no tier limits but its machine's."""
        return None

    def revoke_student_credentials(self, prefix: str) -> list[str]:
        """Nothing to revoke: classroom logins live and die with the lab cloud."""
        return []

    def ci_trust(
        self, student: str, repositories: list[str], github: GitHubRepository
    ) -> dict[str, str]:
        """Nothing: GitHub's runners cannot reach a classroom registry (students push to it
        from their VM, Activity 5 part 2), so there is no variable to set."""
        return {}

    def revoke_ci_trust(self, prefix: str) -> list[str]:
        """Nothing was trusted."""
        return []
