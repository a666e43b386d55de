"""Azure Container Registry through azure-mgmt-containerregistry and azure-containerregistry.

ACR creates a repository on its first push, so ``ensure_repository`` only checks the name.
What the instructor manages are per-student *scope maps* and *tokens* (ARM): a token whose
scope map allows read and write on that student's repositories only, with a password that
lapses after ``token_days``. Listing and deleting repositories go through the data-plane
client. The instructor's own docker login exchanges an Entra ID token for an ACR refresh
token at ``/oauth2/exchange``, as ``az acr login`` does.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import requests
from azure.containerregistry import ContainerRegistryClient
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.identity import CredentialUnavailableError, DefaultAzureCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry import models as acr_models
from pydantic import ConfigDict, with_config

from registries.base import (
    GITHUB_ISSUER,
    Credentials,
    GitHubRepository,
    RegistryError,
    check_repository_name,
)

ARM_SCOPE = "https://management.azure.com/.default"
# Registry logins take an Entra ID token for this audience; the ARM audience also works
# unless the registry disables it (an Azure Policy Microsoft recommends), so it is not used.
ACR_AUDIENCE = "https://containerregistry.azure.net"
ACR_SCOPE = f"{ACR_AUDIENCE}/.default"
# The all-zero user is how ACR spells "the password is a refresh token" (az acr login).
REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"  # noqa: S105 (a user name)
REFRESH_MARGIN = dt.timedelta(minutes=15)
# Scope-map and token names: 5 to 50 letters, digits and hyphens.
# Scope maps and tokens: 5 to 50 alphanumerics, hyphens and underscores (Azure's naming
# rules for Microsoft.ContainerRegistry).
_RESOURCE_NAME = re.compile(r"^[A-Za-z0-9_-]{5,50}$")
TIMEOUT = 30
# Keyless CI: an Entra app registration per student, trusted through a federated credential.
GRAPH_AUDIENCE = "https://graph.microsoft.com"
ARM_AUDIENCE = "https://management.azure.com"
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"  # what GitHub's token must be issued for
ACR_PUSH_ROLE = "8311e382-0749-4cb8-b61a-304f252e45ec"  # AcrPush (built-in role id)
KIT_TAG = "workshop-ci"  # every app registration the kit makes carries it ...
FEDERATED_NAME = "github-main"  # ... and one federated credential of this name


T = TypeVar("T")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@with_config(ConfigDict(extra="forbid"))
@dataclass
class AcrSettings:
    """Which registry, and how student tokens are made (README, 'Registries')."""

    subscription_id: str
    resource_group: str
    registry: str
    tenant_id: str | None = None
    token_days: int = 7
    # ARM operations (scope maps, tokens) are polled this often, unless Azure says when.
    poll_seconds: float = 2.0
    arm_endpoint: str | None = None  # tests point these two at a local server
    data_endpoint: str | None = None  # default https://<login server>
    ca_file: str | None = None  # a private CA (tests, TLS-inspecting proxies)
    graph_endpoint: str | None = None  # default https://graph.microsoft.com (tests: the fake)
    tags: dict[str, str] = field(default_factory=dict)


def access_name(repositories: list[str]) -> str:
    """The scope-map/token name for a student's repositories: their shared path, hyphenated."""
    prefixes = {name.rpartition("/")[0] or name for name in repositories}
    if len(prefixes) != 1:
        raise RegistryError(
            f"acr: one token covers one student's path, got {sorted(prefixes)}: pass "
            "repositories under one path (e.g. nov-2026/student01/...)"
        )
    name = re.sub(r"[^A-Za-z0-9_-]", "-", prefixes.pop())[:50]
    if not _RESOURCE_NAME.match(name):
        raise RegistryError(f"acr: cannot make a token name from {repositories[0]!r}")
    return name


class AcrRegistry:
    """One Azure Container Registry."""

    name = "acr"

    def __init__(
        self,
        settings: AcrSettings,
        *,
        credential: Any = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep  # waiting out Entra ID's replication (tests shorten it)
        self._credential = credential or DefaultAzureCredential(additionally_allowed_tenants=["*"])
        transport: dict[str, Any] = {}
        if settings.ca_file:
            transport["connection_verify"] = settings.ca_file
        management: dict[str, Any] = {**transport, "polling_interval": settings.poll_seconds}
        if settings.arm_endpoint:
            management.update(base_url=settings.arm_endpoint, credential_scopes=[ARM_SCOPE])
        self._transport = transport
        self._mgmt = ContainerRegistryManagementClient(
            self._credential, settings.subscription_id, **management
        )
        self._login_server: str | None = None
        self._data: ContainerRegistryClient | None = None
        self._token: Credentials | None = None

    # --- plumbing -------------------------------------------------------------------------

    def _call(self, action: str, call: Callable[[], Any]) -> Any:
        """One Azure call; missing or refused credentials become one line naming the fix."""
        try:
            return call()
        except (CredentialUnavailableError, ClientAuthenticationError) as exc:
            if isinstance(exc, ClientAuthenticationError) and exc.status_code not in (None, 401):
                raise
            raise RegistryError(
                f"acr: no usable Azure credentials to {action}: run 'az login', or set "
                "AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (DefaultAzureCredential)"
            ) from None
        except ServiceRequestError:
            raise RegistryError(
                f"acr: cannot reach Azure to {action}: check the network (and acr.ca_file if a "
                "proxy inspects TLS)"
            ) from None
        except HttpResponseError as exc:
            if exc.status_code == 403:
                raise RegistryError(
                    f"acr: permission denied to {action} on {self.settings.registry}: the "
                    "identity needs the Contributor role (or AcrPush) on the registry"
                ) from None
            raise

    @property
    def login_server(self) -> str:
        if self._login_server is None:
            try:
                registry = self._call(
                    f"read registry {self.settings.registry}",
                    lambda: self._mgmt.registries.get(
                        self.settings.resource_group, self.settings.registry
                    ),
                )
            except ResourceNotFoundError:
                raise RegistryError(
                    f"acr: registry {self.settings.registry!r} not found in resource group "
                    f"{self.settings.resource_group!r}: create it ('az acr create') or fix "
                    "acr.registry / acr.resource_group in the registries file"
                ) from None
            self._login_server = str(registry.properties.login_server)
        return self._login_server

    @property
    def _endpoint(self) -> str:
        return self.settings.data_endpoint or f"https://{self.login_server}"

    @property
    def data(self) -> ContainerRegistryClient:
        if self._data is None:
            self._data = ContainerRegistryClient(
                self._endpoint,
                self._credential,
                audience=ACR_AUDIENCE,
                **self._transport,
            )
        return self._data

    def check_name(self, repository: str) -> None:
        """Refuse a name ACR would refuse, before any call."""
        check_repository_name(self.name, repository, min_length=2, max_length=256)

    # --- the protocol ---------------------------------------------------------------------

    def ensure_repository(self, repository: str, *, student: str | None = None) -> str:
        """ACR creates repositories on first push: the name is checked, the URI returned."""
        self.check_name(repository)
        return f"{self.login_server}/{repository}"

    def login(self) -> Credentials:
        """Exchange an Entra ID token for an ACR refresh token (the all-zero docker user).

        No SDK call does this exchange (the data-plane client keeps it private), so it is
        the documented POST to /oauth2/exchange.
        """
        if self._token and not self._token.expires_within(REFRESH_MARGIN, self._clock()):
            return self._token
        # The token must come from the tenant the exchange names (a guest identity has
        # several), so tenant_id asks Entra ID for that tenant's token.
        tenant = {"tenant_id": self.settings.tenant_id} if self.settings.tenant_id else {}
        entra = self._call("log in", lambda: self._credential.get_token(ACR_SCOPE, **tenant))
        form = {
            "grant_type": "access_token",
            "service": self.login_server,
            "access_token": entra.token,
            **({"tenant": self.settings.tenant_id} if self.settings.tenant_id else {}),
        }
        try:
            response = requests.post(
                f"{self._endpoint}/oauth2/exchange",
                data=form,
                timeout=TIMEOUT,
                verify=self.settings.ca_file or True,
            )
        except requests.RequestException:
            raise RegistryError(f"acr: cannot reach {self._endpoint}/oauth2/exchange") from None
        if response.status_code == 401:
            raise RegistryError(
                f"acr: {self.login_server} refused the Entra ID token: the identity needs "
                "AcrPush on the registry ('az role assignment create')"
            )
        response.raise_for_status()
        refresh = response.json()["refresh_token"]
        self._token = Credentials(
            self.login_server, REFRESH_TOKEN_USER, refresh, _jwt_expiry(refresh)
        )
        return self._token

    def list_repositories(self, prefix: str = "") -> list[str]:
        names = self._call("list repositories", lambda: list(self.data.list_repository_names()))
        return sorted(name for name in names if name.startswith(prefix))

    def list_tags(self, repository: str) -> list[str]:
        self.check_name(repository)
        try:
            tags = self._call("list tags", lambda: list(self.data.list_tag_properties(repository)))
        except ResourceNotFoundError:
            return []
        return sorted(tag.name for tag in tags)

    def delete_repository(self, repository: str, *, force: bool = False) -> bool:
        """Delete the repository, untagged manifests included; False when it is not there.

        A repository whose tags are gone still holds its manifests (and costs storage), so
        it is found by its properties, not by its tags; the SDK's delete says nothing when
        the repository is missing.
        """
        self.check_name(repository)
        try:
            found = self._call(
                f"read {repository}", lambda: self.data.get_repository_properties(repository)
            )
        except ResourceNotFoundError:
            return False
        if found.tag_count and not force:
            raise RegistryError(
                f"acr: {repository} still holds {found.tag_count} tag(s): pass force to delete them"
            )
        self._call(f"delete {repository}", lambda: self.data.delete_repository(repository))
        return True

    def student_credentials(self, student: str, repositories: list[str]) -> dict[str, Any]:
        """A scope map + token limited to these repositories, with an expiring password."""
        for repository in repositories:
            self.check_name(repository)
        name = access_name(repositories)
        rg, registry = self.settings.resource_group, self.settings.registry
        actions = [
            f"repositories/{repository}/{action}"
            for repository in repositories
            for action in ("content/read", "content/write", "metadata/read")
        ]
        scope_map = self._call(
            f"create scope map {name}",
            lambda: self._mgmt.scope_maps.begin_create(
                rg,
                registry,
                name,
                acr_models.ScopeMap(
                    properties=acr_models.ScopeMapProperties(
                        actions=actions, description=f"workshop: {student}"
                    )
                ),
            ).result(),
        )
        token = self._call(
            f"create token {name}",
            lambda: self._mgmt.tokens.begin_create(
                rg,
                registry,
                name,
                acr_models.Token(
                    properties=acr_models.TokenProperties(
                        scope_map_id=scope_map.id, status="enabled"
                    )
                ),
            ).result(),
        )
        expiry = self._clock() + dt.timedelta(days=self.settings.token_days)
        generated = self._call(
            f"generate a password for {name}",
            lambda: self._mgmt.registries.begin_generate_credentials(
                rg,
                registry,
                acr_models.GenerateCredentialsParameters(
                    token_id=token.id, expiry=expiry, name="password1"
                ),
            ).result(),
        )
        password = generated.passwords[0]
        return {
            "registry": self.login_server,
            "username": generated.username,
            "password": password.value,
            "expires": (password.expiry or expiry).isoformat(),
            "repositories": [f"{self.login_server}/{repository}" for repository in repositories],
        }

    def capacity(self, students: int, image_mb: float) -> str | None:
        """ACR meters each tier (Basic, Standard, Premium): write operations a minute and
        upload bandwidth. A class pushing at once (Activity 5) against them, named."""
        registry = self._call(
            f"read registry {self.settings.registry}",
            lambda: self._mgmt.registries.get(self.settings.resource_group, self.settings.registry),
        )
        name = registry.sku.name  # the SDK's SkuName enum, or the string ARM sent
        tier = str(getattr(name, "value", name))
        if tier not in SKU_LIMITS:
            return None
        writes_per_minute, upload_mbps = SKU_LIMITS[tier]
        # A push writes each layer (start, chunk, commit) and the manifest: about 3 per
        # layer, layers about one per 40 MB of image, at least 5.
        writes = students * (3 * max(5, round(image_mb / 40)) + 1)
        minutes = students * image_mb * 8 / upload_mbps / 60
        if writes <= writes_per_minute and minutes <= UPLOAD_MINUTES:
            return None
        better = next((name for name, (w, _) in SKU_LIMITS.items() if w > writes_per_minute), None)
        return (
            f"acr: {self.settings.registry} is {tier} ({writes_per_minute} write operations a "
            f"minute, {upload_mbps} Mbps upload): {students} students pushing a "
            f"{image_mb:.0f} MB image at once is about {writes} writes and "
            f"{minutes:.0f} minutes of upload, so pushes are throttled (HTTP 429); "
            + (
                f"move it to {better} (az acr update --sku {better}) for the class, or have "
                "students push in turns"
                if better
                else "have students push in turns"
            )
        )

    def revoke_student_credentials(self, prefix: str) -> list[str]:
        """Delete the tokens and scope maps that grant repositories under ``prefix``
        (``nov-2026/``) and nothing else: ownership by what a scope map allows, not by its
        name, so revoking ``nov-2026`` leaves ``nov-2026-b``'s students alone."""
        rg, registry = self.settings.resource_group, self.settings.registry
        scope_maps = self._call(
            "list scope maps", lambda: list(self._mgmt.scope_maps.list(rg, registry))
        )
        owned = {
            scope_map.id: scope_map.name
            for scope_map in scope_maps
            if _grants_only((scope_map.properties and scope_map.properties.actions) or [], prefix)
        }
        removed: list[str] = []
        tokens = self._call("list tokens", lambda: list(self._mgmt.tokens.list(rg, registry)))
        for token in tokens:
            if token.properties and token.properties.scope_map_id in owned:
                self._call(
                    f"delete token {token.name}",
                    partial(_finish, self._mgmt.tokens.begin_delete, rg, registry, token.name),
                )
                removed.append(token.name)
        for name in owned.values():
            self._call(
                f"delete scope map {name}",
                partial(_finish, self._mgmt.scope_maps.begin_delete, rg, registry, name),
            )
        return sorted(removed)

    # --- keyless CI: GitHub OIDC through an Entra app's federated credential ----------

    def _rest(
        self,
        method: str,
        url: str,
        audience: str,
        action: str,
        *,
        missing_ok: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """One Graph or ARM REST call with an Entra ID token for ``audience``; None for a
        404 when ``missing_ok``; a refusal is one line naming what to grant."""
        tenant = {"tenant_id": self.settings.tenant_id} if self.settings.tenant_id else {}
        entra = self._call(
            action, lambda: self._credential.get_token(f"{audience}/.default", **tenant)
        )
        try:
            response = requests.request(
                method,
                url,
                headers={"Authorization": f"Bearer {entra.token}"},
                timeout=TIMEOUT,
                verify=self.settings.ca_file or True,
                **kwargs,
            )
        except requests.RequestException:
            raise RegistryError(f"acr: cannot reach {url.split('?')[0]} to {action}") from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            who = (
                "Application Administrator (Entra ID)"
                if audience == GRAPH_AUDIENCE
                else ("User Access Administrator (or Owner) on the registry")
            )
            raise RegistryError(
                f"acr: Azure refused to {action} ({response.status_code}): the identity the "
                f"kit runs as needs {who} for --ci"
            )
        if response.status_code >= 400:
            error = response.json().get("error", {}) if response.content else {}
            raise _AzureRefusal(
                response.status_code,
                str(error.get("code", "")),
                f"acr: Azure refused to {action}: {error.get('message', response.text[:200])}",
            )
        return response.json() if response.content else {}

    def _graph(self, method: str, path: str, action: str, **kwargs: Any) -> dict[str, Any]:
        base = (self.settings.graph_endpoint or GRAPH_AUDIENCE).rstrip("/")
        return self._rest(method, f"{base}/v1.0/{path}", GRAPH_AUDIENCE, action, **kwargs) or {}

    def _graph_list(self, path: str, query: str, action: str) -> list[dict[str, Any]]:
        """Every object a Graph list returns, following ``@odata.nextLink``."""
        found: list[dict[str, Any]] = []
        base = (self.settings.graph_endpoint or GRAPH_AUDIENCE).rstrip("/")
        url: str | None = f"{base}/v1.0/{path}"
        params: dict[str, str] | None = {"$filter": query}
        while url:
            page = self._rest("GET", url, GRAPH_AUDIENCE, action, params=params) or {}
            found += page.get("value", [])
            url, params = page.get("@odata.nextLink"), None
        return found

    def _graph_find_or_create(
        self, path: str, query: str, what: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The first Graph object of ``path`` matching ``query``, or a new one (a re-run
        finds what the last one made)."""
        found = self._graph_list(path, query, f"find the {what}")
        if found:
            return found[0]
        return _while_replicating(
            lambda: self._graph("POST", path, f"create the {what}", json=body), self._sleep
        )

    @property
    def _registry_id(self) -> str:
        return (
            f"/subscriptions/{self.settings.subscription_id}/resourceGroups/"
            f"{self.settings.resource_group}/providers/Microsoft.ContainerRegistry/registries/"
            f"{self.settings.registry}"
        )

    def _assignments_url(self, name: str = "") -> str:
        base = (self.settings.arm_endpoint or ARM_AUDIENCE).rstrip("/")
        path = f"{self._registry_id}/providers/Microsoft.Authorization/roleAssignments"
        return f"{base}{path}{'/' + name if name else ''}?api-version=2022-04-01"

    def ci_trust(
        self, student: str, repositories: list[str], github: GitHubRepository
    ) -> dict[str, str]:
        """An app registration (and its service principal) for the student, a federated
        credential trusting GitHub's token for the repository's main branch only, and
        AcrPush on the registry. No secret is made."""
        for repository in repositories:
            self.check_name(repository)
        name = access_name(repositories)
        owner_tag = f"{KIT_TAG}:{repositories[0].rpartition('/')[0]}/"
        app = self._graph_find_or_create(
            "applications",
            f"tags/any(t:t eq '{owner_tag}')",
            f"app registration {KIT_TAG}-{name}",
            {
                "displayName": f"{KIT_TAG}-{name}",
                "signInAudience": "AzureADMyOrg",
                "tags": [KIT_TAG, owner_tag],
                "notes": f"GitHub Actions of {github.slug} push to {student}'s repositories",
            },
        )
        principal = self._graph_find_or_create(
            "servicePrincipals",
            f"appId eq '{app['appId']}'",
            "service principal",
            {"appId": app["appId"], "tags": [KIT_TAG]},
        )
        credential = {
            "name": FEDERATED_NAME,
            "issuer": GITHUB_ISSUER,
            "subject": github.subject,
            "audiences": [FEDERATED_AUDIENCE],
            "description": f"GitHub Actions of {github.slug} on {github.branch}",
        }
        path = f"applications/{app['id']}/federatedIdentityCredentials"
        existing = _while_replicating(
            lambda: self._graph("GET", path, "read the federated credentials"), self._sleep
        ).get("value", [])
        if any(item["name"] == FEDERATED_NAME for item in existing):
            self._graph(
                "PATCH",
                f"{path}/{FEDERATED_NAME}",
                "update the federated credential",
                json={k: v for k, v in credential.items() if k != "name"},
            )
        else:
            _while_replicating(
                lambda: self._graph("POST", path, "add the federated credential", json=credential),
                self._sleep,
            )
        # A deterministic assignment name makes a re-run a no-op; a new service principal
        # can take a while to reach ARM (PrincipalNotFound), so that is retried.
        assignment = uuid.uuid5(uuid.NAMESPACE_URL, f"{self._registry_id}|{principal['id']}")
        body = {
            "properties": {
                "roleDefinitionId": f"/subscriptions/{self.settings.subscription_id}/providers/"
                f"Microsoft.Authorization/roleDefinitions/{ACR_PUSH_ROLE}",
                "principalId": principal["id"],
                "principalType": "ServicePrincipal",
            }
        }
        try:
            _while_replicating(
                lambda: self._rest(
                    "PUT",
                    self._assignments_url(str(assignment)),
                    ARM_AUDIENCE,
                    f"grant AcrPush on {self.settings.registry}",
                    json=body,
                ),
                self._sleep,
            )
        except _AzureRefusal as refusal:
            if refusal.code != "RoleAssignmentExists":
                raise RegistryError(str(refusal)) from None
        tenant = self.settings.tenant_id or str(
            self._graph("GET", "organization", "read the tenant")["value"][0]["id"]
        )
        return {
            "AZURE_CLIENT_ID": str(app["appId"]),
            "AZURE_TENANT_ID": tenant,
            "AZURE_SUBSCRIPTION_ID": self.settings.subscription_id,
            "ACR_NAME": self.settings.registry,
            "ACR_REPOSITORY": repositories[0],
        }

    def revoke_ci_trust(self, prefix: str) -> list[str]:
        """Delete the app registrations (their service principals and AcrPush) that
        ``ci_trust`` made for repositories under ``prefix``: owned by their exact tag."""
        removed = []
        apps = self._graph_list(
            "applications", f"tags/any(t:t eq '{KIT_TAG}')", "list the app registrations"
        )
        for app in apps:
            owners = [t for t in app.get("tags", []) if t.startswith(f"{KIT_TAG}:")]
            if not owners or not all(
                t.removeprefix(f"{KIT_TAG}:").startswith(prefix) for t in owners
            ):
                continue
            principals = self._graph_list(
                "servicePrincipals", f"appId eq '{app['appId']}'", "find the service principal"
            )
            for principal in principals:
                listed = (
                    self._rest(
                        "GET",
                        self._assignments_url() + f"&$filter=principalId eq '{principal['id']}'",
                        ARM_AUDIENCE,
                        "list role assignments",
                    )
                    or {}
                )
                for assignment in listed.get("value", []):
                    self._rest(
                        "DELETE",
                        self._assignments_url(assignment["name"]),
                        ARM_AUDIENCE,
                        "remove AcrPush",
                        missing_ok=True,
                    )
                self._graph(
                    "DELETE",
                    f"servicePrincipals/{principal['id']}",
                    "delete the principal",
                    missing_ok=True,
                )
            self._graph(
                "DELETE",
                f"applications/{app['id']}",
                "delete the app registration",
                missing_ok=True,
            )
            removed.append(str(app["displayName"]))
        return sorted(removed)


class _AzureRefusal(RegistryError):
    """An ARM or Graph refusal with its status and error code (callers may expect one)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


# Entra ID replicates a new app registration and service principal for seconds (at times
# a minute) before the rest of Graph and ARM see them; until then they answer as if it did
# not exist. Those refusals are waited out, with backoff, for up to about two minutes.
_REPLICATING_CODES = {"PrincipalNotFound", "Request_ResourceNotFound"}
_REPLICATING_TEXT = "does not reference a valid application object"
_REPLICATION_TRIES = 8


def _while_replicating(call: Callable[[], T], sleep: Callable[[float], None]) -> T:
    """``call``, tried again while Azure says an object the kit just made is not there."""
    for attempt in range(_REPLICATION_TRIES):
        try:
            return call()
        except _AzureRefusal as refusal:
            replicating = refusal.code in _REPLICATING_CODES or _REPLICATING_TEXT in str(refusal)
            if not replicating or attempt == _REPLICATION_TRIES - 1:
                raise
            sleep(min(30.0, 2.0**attempt))
    raise AssertionError("the loop returns or raises")


# Each tier's write operations a minute and upload bandwidth (Mbps), as Azure documents
# them ("Azure Container Registry service tiers"); ordered from the smallest.
SKU_LIMITS = {"Basic": (100, 10), "Standard": (500, 20), "Premium": (2000, 50)}
UPLOAD_MINUTES = 10  # longer than this for the class's pushes is a lesson lost


def _grants_only(actions: list[str], prefix: str) -> bool:
    """Whether scope-map actions (``repositories/<name>/<action>``) name repositories,
    all of them under ``prefix``."""
    repositories = [
        action.removeprefix("repositories/").rsplit("/", 2)[0]
        for action in actions
        if action.startswith("repositories/")
    ]
    return bool(repositories) and all(name.startswith(prefix) for name in repositories)


def _finish(begin: Callable[..., Any], *args: Any) -> Any:
    """Start an ARM long-running operation and wait for its result."""
    return begin(*args).result()


def _jwt_expiry(token: str) -> dt.datetime | None:
    """The ``exp`` claim of an ACR refresh token (a JWT), without verifying it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
    except (IndexError, ValueError, KeyError):
        return None
