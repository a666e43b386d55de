"""Google Artifact Registry (the ``gcr`` name) through google-cloud-artifact-registry.

Artifact Registry keeps Docker images in *repositories* that hold many images, and its
repository ids allow only lower-case letters, digits and hyphens. The kit's repository
names (``nov-2026/student01/classifier``) map onto it one way and back:

    nov-2026/student01/classifier
    -> repository ``nov-2026--student01`` (the path before the image, '/' as '--')
    -> image URI ``europe-west1-docker.pkg.dev/<project>/nov-2026--student01/classifier``

so each student owns one Artifact Registry repository, which is what IAM can scope
(``roles/artifactregistry.writer`` on that repository). Path parts therefore start with a
letter and contain no '--'; the check runs before any call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.api_core import exceptions as gexc
from google.cloud import artifactregistry_v1 as ar
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.oauth2 import service_account
from google.protobuf import field_mask_pb2
from pydantic import ConfigDict, with_config

from registries.base import (
    GITHUB_ISSUER,
    Credentials,
    GitHubRepository,
    RegistryError,
    check_repository_name,
)

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
WRITER_ROLE = "roles/artifactregistry.writer"
# Path parts become one repository id: ^[a-z]([a-z0-9-]*[a-z0-9])?$, at most 63 characters.
_PART = r"[a-z](?:[a-z0-9]|-(?!-))*(?<!-)"
GCR_NAME = re.compile(rf"^{_PART}(?:/{_PART})*/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
REPOSITORY_ID_MAX = 63
REFRESH_MARGIN = dt.timedelta(minutes=10)
# A repository is created by a long-running operation; the kit waits this long for it.
OPERATION_TIMEOUT = 120
# Keyless CI: Workload Identity Federation lives in the IAM API (REST only).
IAM_ENDPOINT = "https://iam.googleapis.com"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
KIT_MARK = "workshop-ci"  # starts the description of every pool, provider and account it makes


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@with_config(ConfigDict(extra="forbid"))
@dataclass
class ArtifactSettings:
    """How repositories are created (documented in README, 'Registries')."""

    project: str
    location: str
    credentials_file: str | None = None
    endpoint: str | None = None  # the API endpoint; tests point it at a local server
    registry_host: str | None = None  # default <location>-docker.pkg.dev
    keep_images: int = 20
    delete_untagged_after_days: int = 7
    labels: dict[str, str] = field(default_factory=dict)
    student_member: str | None = None  # e.g. "user:{student}@example.edu"
    iam_endpoint: str | None = None  # default https://iam.googleapis.com (tests: the fake)

    @property
    def host(self) -> str:
        return self.registry_host or f"{self.location}-docker.pkg.dev"


@dataclass(frozen=True)
class ArtifactPath:
    """Where one kit repository name lives in Artifact Registry."""

    repository_id: str
    image: str


def split_name(repository: str) -> ArtifactPath:
    """``a/b/image`` -> repository ``a--b``, image ``image``, after checking the name."""
    check_repository_name("gcr", repository, pattern=GCR_NAME, min_length=3, max_length=255)
    prefix, _, image = repository.rpartition("/")
    repository_id = prefix.replace("/", "--")
    if len(repository_id) > REPOSITORY_ID_MAX:
        raise RegistryError(
            f"gcr: invalid repository name {repository!r}: the path before the image, "
            f"{prefix!r}, makes a repository id longer than {REPOSITORY_ID_MAX} characters"
        )
    return ArtifactPath(repository_id, image)


class ArtifactRegistry:
    """One Google Cloud project and location's Artifact Registry."""

    name = "gcr"

    def __init__(
        self,
        settings: ArtifactSettings,
        *,
        credentials: Any = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._credentials = credentials or self._load_credentials()
        options = {"api_endpoint": settings.endpoint} if settings.endpoint else None
        self._client = ar.ArtifactRegistryClient(
            credentials=self._credentials, transport="rest", client_options=options
        )
        self._token: Credentials | None = None

    def _load_credentials(self) -> Any:
        """A service-account key when configured, else Application Default Credentials."""
        try:
            if self.settings.credentials_file:
                return service_account.Credentials.from_service_account_file(
                    self.settings.credentials_file, scopes=SCOPES
                )
            credentials, _ = google.auth.default(scopes=SCOPES)
        except (google.auth.exceptions.DefaultCredentialsError, FileNotFoundError, ValueError):
            where = self.settings.credentials_file or "Application Default Credentials"
            raise RegistryError(
                f"gcr: no usable Google credentials ({where}): run 'gcloud auth "
                "application-default login', or set GOOGLE_APPLICATION_CREDENTIALS (or "
                "gcr.credentials_file) to a service-account key file"
            ) from None
        return credentials

    @property
    def _parent(self) -> str:
        return f"projects/{self.settings.project}/locations/{self.settings.location}"

    def _repository_path(self, repository_id: str) -> str:
        return f"{self._parent}/repositories/{repository_id}"

    def _call(self, action: str, call: Callable[[], Any]) -> Any:
        """One API call; refused or missing credentials become one line naming the fix."""
        try:
            return call()
        except (gexc.Unauthorized, google.auth.exceptions.RefreshError):
            raise RegistryError(
                f"gcr: Google refused the credentials while trying to {action}: run 'gcloud "
                "auth application-default login' or check the service-account key"
            ) from None
        except gexc.Forbidden:
            raise RegistryError(
                f"gcr: permission denied to {action} in project {self.settings.project}: the "
                "account needs roles/artifactregistry.admin there"
            ) from None

    def check_name(self, repository: str) -> None:
        """Refuse a name that cannot map onto an Artifact Registry repository and image."""
        split_name(repository)

    def uri(self, repository: str) -> str:
        path = split_name(repository)
        return f"{self.settings.host}/{self.settings.project}/{path.repository_id}/{path.image}"

    def cleanup_policies(self) -> dict[str, ar.CleanupPolicy]:
        """``keep_images`` as ECR's lifecycle rule means it: the newest N stay, the rest go.

        An Artifact Registry KEEP policy only exempts versions from DELETE policies, so the
        newest N are kept by one and everything else is deleted by another (where both
        match, KEEP wins); untagged versions also go after a few days."""
        delete_rest = ar.CleanupPolicy(
            id="delete-the-rest",
            action=ar.CleanupPolicy.Action.DELETE,
            condition=ar.CleanupPolicyCondition(tag_state=ar.CleanupPolicyCondition.TagState.ANY),
        )
        keep = ar.CleanupPolicy(
            id="keep-newest",
            action=ar.CleanupPolicy.Action.KEEP,
            most_recent_versions=ar.CleanupPolicyMostRecentVersions(
                keep_count=self.settings.keep_images
            ),
        )
        untagged = ar.CleanupPolicy(
            id="delete-untagged",
            action=ar.CleanupPolicy.Action.DELETE,
            condition=ar.CleanupPolicyCondition(
                tag_state=ar.CleanupPolicyCondition.TagState.UNTAGGED,
                older_than=dt.timedelta(days=self.settings.delete_untagged_after_days),
            ),
        )
        return {policy.id: policy for policy in (keep, delete_rest, untagged)}

    def ensure_repository(self, repository: str, *, student: str | None = None) -> str:
        """Create the student's Docker repository (awaiting the operation); return the URI."""
        path = split_name(repository)
        labels = {**self.settings.labels, **({"student": student} if student else {})}
        wanted = ar.Repository(
            format_=ar.Repository.Format.DOCKER,
            description="Containerization with Docker for ML workshop",
            labels=labels,
            cleanup_policies=self.cleanup_policies(),
        )
        try:
            operation = self._call(
                f"create repository {path.repository_id}",
                lambda: self._client.create_repository(
                    parent=self._parent, repository_id=path.repository_id, repository=wanted
                ),
            )
            operation.result(timeout=OPERATION_TIMEOUT)
        except gexc.Conflict:  # ALREADY_EXISTS (HTTP 409): its settings may be older
            self._apply_settings(path.repository_id, wanted)
        return self.uri(repository)

    def _apply_settings(self, repository_id: str, wanted: ar.Repository) -> None:
        """Labels and cleanup policies changed in registries.yml reach a repository made
        before the change (``keep_images`` must stop a cohort's costs everywhere)."""
        name = self._repository_path(repository_id)
        current = self._call(
            f"read repository {repository_id}", lambda: self._client.get_repository(name=name)
        )
        # Labels are added or changed, never dropped (an ensure without a student keeps it).
        wanted.labels = {**dict(current.labels), **dict(wanted.labels)}
        changed = [
            field
            for field in ("labels", "cleanup_policies")
            if dict(getattr(current, field)) != dict(getattr(wanted, field))
        ]
        if changed:
            wanted.name = name
            self._call(
                f"update repository {repository_id}",
                lambda: self._client.update_repository(
                    repository=wanted, update_mask=field_mask_pb2.FieldMask(paths=changed)
                ),
            )

    def login(self) -> Credentials:
        """``oauth2accesstoken`` and an access token, refreshed before it lapses."""
        if self._token and not self._token.expires_within(REFRESH_MARGIN, self._clock()):
            return self._token
        try:
            self._credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.RefreshError:
            raise RegistryError(
                "gcr: Google refused to issue an access token: run 'gcloud auth "
                "application-default login' or check the service-account key"
            ) from None
        expiry = self._credentials.expiry
        if expiry is not None and expiry.tzinfo is None:  # google-auth keeps naive UTC
            expiry = expiry.replace(tzinfo=dt.UTC)
        self._token = Credentials(
            self.settings.host, "oauth2accesstoken", self._credentials.token, expiry
        )
        return self._token

    def list_repositories(self, prefix: str = "") -> list[str]:
        """Kit repository names (``a/b/image``) of every image in every Docker repository."""
        names: list[str] = []
        repositories = self._call(
            "list repositories", lambda: self._client.list_repositories(parent=self._parent)
        )
        for repo in repositories:
            repository_id = repo.name.rsplit("/", 1)[-1]
            if repo.format_ != ar.Repository.Format.DOCKER:
                continue
            path = repository_id.replace("--", "/")
            if not (path.startswith(prefix) or prefix.startswith(path + "/")):
                continue
            for package in self._client.list_packages(parent=repo.name):
                image = package.name.rsplit("/", 1)[-1].replace("%2F", "/")
                names.append(f"{path}/{image}")
        return sorted(name for name in names if name.startswith(prefix))

    def list_tags(self, repository: str) -> list[str]:
        """Tags of one image (empty when it, or its repository, does not exist)."""
        path = split_name(repository)
        package = f"{self._repository_path(path.repository_id)}/packages/{path.image}"
        try:
            tags = self._call("list tags", lambda: list(self._client.list_tags(parent=package)))
        except gexc.NotFound:
            return []
        return sorted(tag.name.rsplit("/", 1)[-1] for tag in tags)

    def delete_repository(self, repository: str, *, force: bool = False) -> bool:
        """Delete one image; the student's repository goes too once it holds no image."""
        path = split_name(repository)
        repository_path = self._repository_path(path.repository_id)
        tags = self.list_tags(repository)
        if tags and not force:
            raise RegistryError(
                f"gcr: {repository} still holds {len(tags)} tag(s): pass force to delete them"
            )
        deleted = False
        try:
            self._call(
                f"delete {repository}",
                lambda: self._client.delete_package(
                    name=f"{repository_path}/packages/{path.image}"
                ).result(timeout=OPERATION_TIMEOUT),
            )
            deleted = True
        except gexc.NotFound:
            pass
        try:
            remaining = list(self._client.list_packages(parent=repository_path))
            if not remaining:
                self._call(
                    f"delete repository {path.repository_id}",
                    lambda: self._client.delete_repository(name=repository_path).result(
                        timeout=OPERATION_TIMEOUT
                    ),
                )
                deleted = True
        except gexc.NotFound:
            pass
        return deleted

    def student_credentials(self, student: str, repositories: list[str]) -> dict[str, Any]:
        """Grant the student's Google identity push rights on their own repositories.

        Students log in with their own account (``gcloud auth configure-docker``); nothing
        secret is issued, so the card carries the URIs and the member that was granted.
        """
        if not self.settings.student_member:
            raise RegistryError(
                "gcr: set gcr.student_member (e.g. 'user:{student}@example.edu') in the "
                "registries file so each student's Google identity can be granted"
            )
        member = self.settings.student_member.format(student=student)
        self._grant_writer(member, repositories)
        return {
            "registry": self.settings.host,
            "member": member,
            "login": f"gcloud auth configure-docker {self.settings.host}",
            "repositories": [self.uri(name) for name in repositories],
        }

    def _grant_writer(self, member: str, repositories: list[str]) -> None:
        """``roles/artifactregistry.writer`` for ``member`` on these repositories' ids."""
        for repository_id in sorted({split_name(name).repository_id for name in repositories}):
            resource = self._repository_path(repository_id)
            policy = self._call(
                f"read the IAM policy of {repository_id}",
                partial(
                    self._client.get_iam_policy,
                    request=iam_policy_pb2.GetIamPolicyRequest(resource=resource),
                ),
            )
            binding = next((b for b in policy.bindings if b.role == WRITER_ROLE), None)
            if binding is not None and member in binding.members:
                continue
            if binding is None:
                policy.bindings.append(policy_pb2.Binding(role=WRITER_ROLE, members=[member]))
            else:
                binding.members.append(member)
            self._call(
                f"grant {member} on {repository_id}",
                partial(
                    self._client.set_iam_policy,
                    request=iam_policy_pb2.SetIamPolicyRequest(resource=resource, policy=policy),
                ),
            )

    def capacity(self, students: int, image_mb: float) -> str | None:
        """Artifact Registry's write quota (thousands a minute per region) holds a class."""
        return None

    def revoke_student_credentials(self, prefix: str) -> list[str]:
        """The students' writer grants live on their repositories: delete the Docker
        repositories under ``prefix`` that hold no image. A student who never pushed has
        such a repository (and its grant), and ``list_repositories``, which lists images,
        never shows it. Returns their kit paths (``nov-2026/student01``)."""
        removed: list[str] = []
        repositories = self._call(
            "list repositories",
            lambda: list(self._client.list_repositories(parent=self._parent)),
        )
        for repo in repositories:
            if repo.format_ != ar.Repository.Format.DOCKER:
                continue
            path = repo.name.rsplit("/", 1)[-1].replace("--", "/")
            if not f"{path}/".startswith(prefix):
                continue
            if list(self._client.list_packages(parent=repo.name)):
                continue  # it still holds images: delete_repository is for those
            self._call(
                f"delete repository {path}",
                partial(_delete_repository, self._client, repo.name),
            )
            removed.append(path)
        return sorted(removed)

    # --- keyless CI: GitHub OIDC through Workload Identity Federation -------------------

    def _iam(
        self, method: str, path: str, action: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> dict[str, Any] | None:
        """One IAM API call (REST, with the adapter's credentials), its operation awaited.
        None for 404 (or 409) when ``missing_ok``; any other refusal is one line."""
        session = google.auth.transport.requests.AuthorizedSession(self._credentials)
        url = f"{(self.settings.iam_endpoint or IAM_ENDPOINT).rstrip('/')}/v1/{path}"
        try:
            response = session.request(method, url, timeout=60, **kwargs)
        except google.auth.exceptions.RefreshError:
            raise RegistryError(
                f"gcr: Google refused the credentials while trying to {action}: run 'gcloud "
                "auth application-default login' or check the service-account key"
            ) from None
        except requests.RequestException as exc:
            raise RegistryError(f"gcr: cannot reach the IAM API to {action}: {exc}") from None
        if missing_ok and response.status_code in (404, 409):
            return None
        if response.status_code == 403:
            raise RegistryError(
                f"gcr: permission denied to {action} in project {self.settings.project}: the "
                "account needs roles/iam.workloadIdentityPoolAdmin and "
                "roles/iam.serviceAccountAdmin there for --ci"
            )
        if response.status_code >= 400:
            message = response.json().get("error", {}).get("message", response.text[:200])
            raise RegistryError(f"gcr: IAM refused to {action}: {message}")
        body: dict[str, Any] = response.json() if response.content else {}
        deadline = time.monotonic() + OPERATION_TIMEOUT
        while "/operations/" in str(body.get("name", "")) and not body.get("done"):
            if time.monotonic() > deadline:
                raise RegistryError(f"gcr: IAM did not finish ({action}) in {OPERATION_TIMEOUT} s")
            time.sleep(1)
            body = self._iam("GET", body["name"], action) or {}
        if "error" in body and body.get("done"):
            raise RegistryError(f"gcr: IAM failed to {action}: {body['error'].get('message')}")
        return body

    def _pool_path(self, cohort: str) -> str:
        pool = _short_id(f"ws-{cohort}", 32)
        return f"projects/{self.settings.project}/locations/global/workloadIdentityPools/{pool}"

    def _ensure(self, path: str, create: str, query: dict[str, str], body: dict[str, Any]) -> Any:
        """Get ``path``; create it when missing, undelete it when soft-deleted (a deleted
        pool or provider keeps its id for 30 days and cannot be created again)."""
        found = self._iam("GET", path, f"read {path}", missing_ok=True)
        if found is None:  # 409: a parallel student's call made it first
            self._iam("POST", create, f"create {path}", missing_ok=True, params=query, json=body)
        elif found.get("state") == "DELETED":
            self._iam("POST", f"{path}:undelete", f"undelete {path}", json={})
        return self._iam("GET", path, f"read {path}")

    def ci_trust(
        self, student: str, repositories: list[str], github: GitHubRepository
    ) -> dict[str, str]:
        """A workload identity pool per cohort, a provider per student accepting GitHub's
        tokens for that repository's main branch only, and a service account that only this
        subject may impersonate, writer on the student's repositories."""
        paths = {split_name(name).repository_id for name in repositories}
        if len(paths) != 1:
            raise RegistryError(f"gcr: --ci covers one student's path, got {sorted(paths)}")
        repository_id = paths.pop()
        for name in repositories:
            self.ensure_repository(name, student=student)
        kit_path = repository_id.replace("--", "/")
        cohort = kit_path.split("/")[0]
        pool = self._pool_path(cohort)
        pool_id = pool.rsplit("/", 1)[1]
        self._ensure(
            pool,
            pool.rsplit("/", 1)[0],
            {"workloadIdentityPoolId": pool_id},
            {"displayName": pool_id, "description": f"{KIT_MARK} {cohort}/"},
        )
        provider_id = _short_id(repository_id, 32)
        provider_body = {
            "displayName": provider_id,
            "description": f"{KIT_MARK} {kit_path}/ {github.slug}",
            "attributeMapping": {
                "google.subject": "assertion.sub",
                "attribute.repository": "assertion.repository",
            },
            # Google refuses GitHub providers without a condition: only this subject.
            "attributeCondition": f"assertion.sub == '{github.subject}'",
            "oidc": {"issuerUri": GITHUB_ISSUER},
        }
        provider = self._ensure(
            f"{pool}/providers/{provider_id}",
            f"{pool}/providers",
            {"workloadIdentityPoolProviderId": provider_id},
            provider_body,
        )
        self._iam(
            "PATCH",
            f"{pool}/providers/{provider_id}",
            f"update provider {provider_id}",
            params={"updateMask": "description,attributeMapping,attributeCondition"},
            json=provider_body,
        )
        account_id = _short_id(f"ci-{repository_id}", 30)
        email = f"{account_id}@{self.settings.project}.iam.gserviceaccount.com"
        self._iam(
            "POST",
            f"projects/{self.settings.project}/serviceAccounts",
            f"create service account {account_id}",
            missing_ok=True,  # 409: it exists already
            json={
                "accountId": account_id,
                "serviceAccount": {
                    "displayName": f"GitHub Actions of {github.slug}"[:100],
                    "description": f"{KIT_MARK} {kit_path}/ {github.slug}",
                },
            },
        )
        # Only GitHub's token for this subject, exchanged through this pool, may act as it.
        number_pool = provider["name"].split("/providers/")[0]  # projects/<number>/...
        principal = f"principal://iam.googleapis.com/{number_pool}/subject/{github.subject}"
        account = f"projects/{self.settings.project}/serviceAccounts/{email}"
        policy = {"bindings": [{"role": WORKLOAD_IDENTITY_USER, "members": [principal]}]}
        for attempt in range(5):  # a new account can take seconds to be visible to IAM
            if self._iam(
                "POST",
                f"{account}:setIamPolicy",
                f"let {github.slug} act as {email}",
                missing_ok=attempt < 4,
                json={"policy": policy},
            ):
                break
            time.sleep(2**attempt)
        self._grant_writer(f"serviceAccount:{email}", repositories)
        first = split_name(repositories[0])
        return {
            "GCP_WORKLOAD_IDENTITY_PROVIDER": str(provider["name"]),
            "GCP_SERVICE_ACCOUNT": email,
            "GCP_REGION": self.settings.location,
            "GAR_REPOSITORY": f"{self.settings.project}/{first.repository_id}/{first.image}",
        }

    def _iam_list(self, path: str, key: str, what: str) -> list[dict[str, Any]]:
        """Every item of an IAM list, page after page (``nextPageToken``)."""
        items: list[dict[str, Any]] = []
        page: str | None = ""
        while page is not None:
            listed = self._iam(
                "GET", path, what, params={"pageSize": 100, **({"pageToken": page} if page else {})}
            )
            items += (listed or {}).get(key, [])
            page = (listed or {}).get("nextPageToken") or None
        return items

    def revoke_ci_trust(self, prefix: str) -> list[str]:
        """Delete the service accounts and providers ``ci_trust`` made under ``prefix``,
        and the cohort's pool once no provider is left in it (pools are only soft-deleted:
        ``ci_trust`` undeletes one within 30 days)."""
        removed: list[str] = []

        def ours(description: str) -> bool:
            mark, _, rest = description.partition(" ")
            return mark == KIT_MARK and rest.split(" ")[0].startswith(prefix)

        accounts = self._iam_list(
            f"projects/{self.settings.project}/serviceAccounts", "accounts", "list service accounts"
        )
        for account in accounts:
            if ours(account.get("description", "")):
                self._iam("DELETE", account["name"], f"delete {account['email']}", missing_ok=True)
                removed.append(account["email"])
        pool = self._pool_path(prefix.split("/")[0])
        found = self._iam("GET", pool, f"read {pool}", missing_ok=True)
        if found is None or found.get("state") == "DELETED" or not ours(found["description"]):
            return sorted(removed)
        # Every page: IAM answers at most 50 providers a page, and a partial list would keep
        # later students' trust and judge the pool's emptiness wrongly.
        providers = self._iam_list(
            f"{pool}/providers", "workloadIdentityPoolProviders", "list providers"
        )
        active = [p for p in providers if p.get("state") != "DELETED"]
        for provider in active:
            if ours(provider.get("description", "")):
                self._iam("DELETE", provider["name"], f"delete {provider['name']}", missing_ok=True)
                removed.append(provider["name"].split("/", 4)[-1])
        if all(ours(p.get("description", "")) for p in active):
            self._iam("DELETE", pool, f"delete {pool}", missing_ok=True)
            removed.append(pool.split("/", 4)[-1])
        return sorted(removed)


def _short_id(text: str, limit: int) -> str:
    """``text`` when it fits ``limit``, else its start and a hash (stable, distinct)."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: limit - 9].rstrip('-')}-{digest}"


def _delete_repository(client: Any, name: str) -> None:
    client.delete_repository(name=name).result(timeout=OPERATION_TIMEOUT)
