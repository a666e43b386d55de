"""What every registry adapter offers, and the checks they share.

Adding a registry means one module beside this one implementing ``Registry`` and one
line in ``registries.REGISTRIES``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Protocol


class RegistryError(Exception):
    """A registry refused, or its configuration or credentials are missing.

    Like the kit's own errors, the message names the problem and the fix in one line.
    """


def failure(registry: str, exc: Exception) -> str:
    """One line for a registry call that failed: a RegistryError's own message; any other
    exception (a cloud SDK's own error) named with its type, so the others keep going."""
    if isinstance(exc, RegistryError):
        return str(exc)
    return f"{registry}: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Credentials:
    """A docker login: host, user and password, and when the password lapses."""

    registry: str
    username: str
    password: str
    expires_at: dt.datetime | None = None

    def __repr__(self) -> str:  # never show the password, not even in a traceback
        return f"Credentials(registry={self.registry!r}, username={self.username!r}, password=***)"

    def expires_within(self, delta: dt.timedelta, now: dt.datetime) -> bool:
        """Whether the password lapses before ``now + delta`` (never, without an expiry)."""
        return self.expires_at is not None and self.expires_at <= now + delta


class Registry(Protocol):
    """One container registry, as the kit uses it (see README, 'Registries')."""

    name: str

    def check_name(self, repository: str) -> None:
        """Raise RegistryError naming the rule when the registry would refuse ``repository``."""
        ...

    def ensure_repository(self, repository: str, *, student: str | None = None) -> str:
        """Create the repository if it is missing; return its URI (host/repository)."""
        ...

    def login(self) -> Credentials:
        """Credentials for pushing and pulling, kept in memory by the caller."""
        ...

    def list_repositories(self, prefix: str = "") -> list[str]:
        """Repository names starting with ``prefix``."""
        ...

    def list_tags(self, repository: str) -> list[str]:
        """Tags in ``repository`` (empty when it has none or does not exist)."""
        ...

    def delete_repository(self, repository: str, *, force: bool = False) -> bool:
        """Delete a repository (with its images when ``force``); False if it was absent."""
        ...

    def student_credentials(self, student: str, repositories: list[str]) -> dict[str, Any]:
        """What goes on the student's login card: a login that reaches ``repositories``
        (only those where the cloud can scope it), or the grant made to their own identity."""
        ...

    def revoke_student_credentials(self, prefix: str) -> list[str]:
        """Remove what ``student_credentials`` made for repositories under ``prefix``."""
        ...

    def ci_trust(
        self, student: str, repositories: list[str], github: GitHubRepository
    ) -> dict[str, str]:
        """Let ``github``'s workflow runs on main push to ``repositories`` with OpenID
        Connect (no stored key); returns the repository variables the workflow reads."""
        ...

    def revoke_ci_trust(self, prefix: str) -> list[str]:
        """Remove what ``ci_trust`` made for repositories under ``prefix``."""
        ...

    def capacity(self, students: int, image_mb: float) -> str | None:
        """Why this registry would throttle ``students`` pushing an ``image_mb`` image at
        once (its tier's limits), or None when it has room."""
        ...


# GitHub's OIDC issuer and what a workflow run's token says about itself.
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class GitHubRepository:
    """A GitHub repository whose workflow runs on ``branch`` a cloud is told to trust."""

    owner: str
    name: str
    branch: str = "main"

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def subject(self) -> str:
        """The ``sub`` claim of GitHub's token for a run on the branch (what clouds match)."""
        return f"repo:{self.slug}:ref:refs/heads/{self.branch}"

    @classmethod
    def parse(cls, text: str) -> GitHubRepository:
        """``github:OWNER/REPO`` (GitHub's own name rules), refused with the fix otherwise."""
        kind, _, slug = text.partition(":")
        owner, _, name = slug.partition("/")
        valid = _GITHUB_OWNER.match(owner) and _GITHUB_REPO.match(name) and name not in {".", ".."}
        if kind != "github" or not valid:
            raise RegistryError(
                f"invalid CI repository {text!r}: write github:OWNER/REPO (owner: letters, "
                "digits and single hyphens, up to 39; repository: letters, digits, '.', '_', "
                "'-', up to 100), e.g. github:acme-ml/docker-for-ml"
            )
        return cls(owner, name)


# The OCI distribution spec's repository name: path components of lower-case
# alphanumerics separated by '.', '_', '__' or '-', joined by '/'.
_OCI_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
OCI_NAME = re.compile(rf"^{_OCI_COMPONENT}(?:/{_OCI_COMPONENT})*$")


def check_repository_name(
    registry: str,
    repository: str,
    *,
    pattern: re.Pattern[str] = OCI_NAME,
    min_length: int = 1,
    max_length: int = 255,
) -> None:
    """Refuse a name the registry would refuse, before any call is made."""
    if not min_length <= len(repository) <= max_length or not pattern.match(repository):
        raise RegistryError(
            f"{registry}: invalid repository name {repository!r}: use lower-case letters, "
            f"digits and single '.', '_' or '-' between them, '/' between path parts, "
            f"{min_length} to {max_length} characters (e.g. nov-2026/student01/classifier)"
        )
