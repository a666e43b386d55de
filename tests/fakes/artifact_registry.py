"""A local server speaking Artifact Registry's REST API (v1) and Google's OAuth2 token endpoint.

Only the calls the kit makes, with the request and response JSON of the real API
(https://cloud.google.com/artifact-registry/docs/reference/rest): repositories
create/get/list/delete (long-running operations, awaited through operations.get),
packages and tags (read from a real distribution registry standing in for
``<location>-docker.pkg.dev``), getIamPolicy/setIamPolicy, and ``POST /token`` answering a
service account's JWT-bearer grant with an access token that every API call must carry.

For keyless CI it also speaks IAM's workload identity pools and providers (soft delete,
undelete, Google's id rules, a GitHub provider needs an attribute condition), service
accounts and their IAM policies, STS's token exchange (``POST /v1/token``: a GitHub token
signed by a key registered in ``oidc_issuers``, for the provider's audience, whose claims
pass the provider's condition, becomes a federated token for
``principal://.../subject/<sub>``) and IAM Credentials' ``generateAccessToken`` (only for a
principal the account's policy makes a workloadIdentityUser), as
google-github-actions/auth calls them.

The registry (``<location>-docker.pkg.dev``) takes only tokens from this fake's
``/v2/token``, which Docker asks with the login ``oauth2accesstoken`` and an access token,
as AR's does: the project's owners may push and pull in every repository, anyone else only
where a repository's IAM policy makes them a writer (push, pull) or reader (pull); nobody
pushes to a repository that does not exist; an anonymous or unknown login gets nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jwt

from tests.fakes.distribution import Distribution, TokenSigner

_TYPES = "type.googleapis.com/google.devtools.artifactregistry.v1."
_REPO = r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/repositories/(?P<repo>[^/:]+)"
# What each role lets a member do in the registry.
_ROLE_ACTIONS = {
    "roles/artifactregistry.reader": {"pull"},
    "roles/artifactregistry.writer": {"pull", "push"},
    "roles/artifactregistry.repoAdmin": {"pull", "push", "delete"},
    "roles/artifactregistry.admin": {"pull", "push", "delete"},
}


class ArtifactRegistryServer:
    """The fake; ``backing`` is the distribution registry that holds the images (not yet
    started: ``start()`` starts it behind this fake's token service)."""

    def __init__(self, backing: Distribution) -> None:
        self.backing = backing
        self.repositories: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}  # access token -> the member it was issued to
        # Members with every right in the project (the kit's own service account).
        self.owners: set[str] = set()
        # Service accounts this "project" knows: email -> public key (PEM), for the
        # self-signed JWTs Google's client libraries send instead of fetching a token.
        self.service_accounts: dict[str, bytes] = {}
        self.calls: list[str] = []
        # IAM: workload identity pools and providers (by their project-id names), service
        # accounts (email -> resource) and their policies; OIDC issuers STS trusts (-> key).
        self.project_number = "482615937001"
        self.pools: dict[str, dict[str, Any]] = {}
        self.providers: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.account_policies: dict[str, dict[str, Any]] = {}
        self.oidc_issuers: dict[str, Any] = {}
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._signer = TokenSigner(backing.root / "auth", "fake-artifact-registry")
        backing.token_auth = self._signer.auth(f"{self.endpoint}/v2/token", backing.address)
        backing.bearer = self._full_access

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ArtifactRegistryServer:
        self._thread.start()
        self.backing.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.backing.stop()

    # --- identities and the registry's tokens -----------------------------------------

    def issue_token(self, member: str) -> str:
        """An access token for ``member``, as ``gcloud auth print-access-token`` gives."""
        token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        self.tokens[token] = member
        return token

    def member(self, token: str) -> str | None:
        """Who an access token (or a service account's self-signed JWT) belongs to."""
        if token in self.tokens:
            return self.tokens[token]
        try:
            issuer = jwt.decode(token, options={"verify_signature": False})["iss"]
            key = self.service_accounts[issuer]
            jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})
        except (jwt.PyJWTError, KeyError):
            return None
        return f"serviceAccount:{issuer}"

    def may(self, member: str | None, name: str) -> set[str]:
        """What ``member`` may do to the registry path ``project/repo/image``."""
        project, _, rest = name.partition("/")
        repository_id = rest.partition("/")[0]
        resource = next(
            (
                key
                for key in self.repositories
                if re.fullmatch(
                    rf"projects/{re.escape(project)}/locations/[^/]+/repositories/"
                    rf"{re.escape(repository_id)}",
                    key,
                )
            ),
            None,
        )
        if member is None or resource is None:
            return set()
        if member in self.owners:
            return {"pull", "push", "delete"}
        bindings = self.policies.get(resource, {}).get("bindings", [])
        return set().union(
            *(_ROLE_ACTIONS.get(b["role"], set()) for b in bindings if member in b["members"])
        )

    def registry_token(self, member: str | None, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = set(actions.split(",")) & self.may(member, name)
            access.append({"type": kind, "name": name, "actions": sorted(granted)})
        claims = {"sub": member or "anonymous", "access": access}
        return self._signer.sign(self.backing.address, claims, dt.timedelta(minutes=60))

    def _full_access(self, repository: str | None) -> str:
        """What the fake itself reads the registry with."""
        if repository is None:
            access = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
        else:
            access = [{"type": "repository", "name": repository, "actions": ["*"]}]
        return self._signer.sign(
            self.backing.address, {"sub": "fake", "access": access}, dt.timedelta(minutes=5)
        )

    # --- operations -------------------------------------------------------------------

    def operation(self, parent: str, response: dict[str, Any], done: bool) -> dict[str, Any]:
        name = f"{parent}/operations/{secrets.token_hex(8)}"
        operation = {
            "name": name,
            "metadata": {"@type": _TYPES + "OperationMetadata"},
            "done": done,
        }
        self.operations[name] = {**operation, "done": True, "response": response}
        return operation if not done else self.operations[name]

    # --- the data plane, read from the backing registry -------------------------------

    def images(self, project: str, repo: str) -> list[str]:
        prefix = f"{project}/{repo}/"
        return [name[len(prefix) :] for name in self.backing.catalog() if name.startswith(prefix)]


_POOL = r"projects/(?P<project>[^/]+)/locations/global/workloadIdentityPools/(?P<pool>[^/:]+)"
_PROVIDER = rf"{_POOL}/providers/(?P<provider>[^/:]+)"
_ACCOUNT = r"projects/(?P<project>[^/]+)/serviceAccounts/(?P<email>[^/:]+)"
_POOL_ID = re.compile(r"[a-z0-9-]{4,32}")
_ACCOUNT_ID = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_CONDITION = re.compile(r"assertion\.(\w+) == '([^']*)'")


def _condition_holds(condition: str, claims: dict[str, Any]) -> bool:
    """The conditions the fake can evaluate: ``assertion.X == 'v'`` joined by ``&&``."""
    clauses = [clause.strip() for clause in condition.split("&&")]
    matches = [_CONDITION.fullmatch(clause) for clause in clauses]
    return all(m is not None and str(claims.get(m[1])) == m[2] for m in matches)


def _handler(fake: ArtifactRegistryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _error(self, status: int, state: str, message: str) -> None:
            self._send(status, {"error": {"code": status, "message": message, "status": state}})

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _authorised(self) -> bool:
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if fake.member(bearer):
                return True
            self._error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            return False

        def _registry_token(self, query: dict[str, list[str]]) -> None:
            """Docker's token request: Basic oauth2accesstoken:<access token>, or nothing."""
            header = self.headers.get("Authorization", "")
            member = None
            if header:
                user, _, password = (
                    base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
                )
                member = fake.member(password) if user == "oauth2accesstoken" else None
                if member is None:
                    body = {
                        "errors": [{"code": "UNAUTHORIZED", "message": "Unauthenticated request"}]
                    }
                    return self._send(401, body)
            token = fake.registry_token(member, query.get("scope", []))
            return self._send(200, {"token": token, "access_token": token, "expires_in": 3600})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/token":
                return self._token()
            if url.path == "/v1/token":
                return self._sts_exchange(self._body())
            if not self._authorised():
                return None
            fake.calls.append(f"POST {url.path}")
            path = url.path.removeprefix("/v1/")
            query = parse_qs(url.query)
            if re.fullmatch(r"projects/[^/]+/locations/global/workloadIdentityPools", path):
                return self._create_pool(path, query, self._body())
            if match := re.fullmatch(rf"({_POOL})/providers", path):
                return self._create_provider(match, query, self._body())
            if path.endswith(":undelete"):
                return self._undelete(path.removesuffix(":undelete"))
            if match := re.fullmatch(r"projects/(?P<project>[^/]+)/serviceAccounts", path):
                return self._create_account(match["project"], self._body())
            if match := re.fullmatch(rf"{_ACCOUNT}:setIamPolicy", path):
                return self._set_account_policy(match["email"], self._body())
            if match := re.fullmatch(rf"{_ACCOUNT}:generateAccessToken", path):
                return self._generate_access_token(match["email"])
            if match := re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/repositories", path):
                return self._create(match.group(1), query, self._body())
            if match := re.fullmatch(rf"({_REPO}):setIamPolicy", path):
                return self._set_policy(match.group(1), self._body())
            return self._error(404, "NOT_FOUND", f"no route POST {url.path}")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/v2/token":
                return self._registry_token(parse_qs(url.query))
            if not self._authorised():
                return None
            fake.calls.append(f"GET {url.path}")
            path = url.path.removeprefix("/v1/")
            query = parse_qs(url.query)
            if re.fullmatch(r"projects/[^/]+/locations/[^/]+/operations/[^/]+", path):
                operation = fake.operations.get(path)
                if operation is None:
                    return self._error(404, "NOT_FOUND", f"Operation {path} not found")
                return self._send(200, operation)
            if path.startswith("projects/") and "/operations/" in path and path in fake.operations:
                return self._send(200, fake.operations[path])
            if re.fullmatch(_POOL, path) or re.fullmatch(_PROVIDER, path):
                found = fake.pools.get(path) or fake.providers.get(path)
                if found is None:
                    return self._error(404, "NOT_FOUND", f"Requested entity was not found: {path}")
                return self._send(200, found)
            if match := re.fullmatch(rf"({_POOL})/providers", path):
                providers = [v for k, v in fake.providers.items() if k.startswith(path + "/")]
                # IAM's pages hold at most 50 (pageSize above is cut); small here, so
                # paging is exercised with a few students.
                start = int(query.get("pageToken", ["0"])[0] or 0)
                size = min(int(query.get("pageSize", ["2"])[0] or 2), 2)
                body: dict[str, Any] = {"workloadIdentityPoolProviders": providers[start:][:size]}
                if start + size < len(providers):
                    body["nextPageToken"] = str(start + size)
                return self._send(200, body)
            if match := re.fullmatch(r"projects/(?P<project>[^/]+)/serviceAccounts", path):
                return self._list_accounts(match["project"], query)
            if match := re.fullmatch(r"(projects/[^/]+/locations/[^/]+)/repositories", path):
                return self._list_repositories(match.group(1), query)
            if match := re.fullmatch(rf"({_REPO}):getIamPolicy", path):
                policy = fake.policies.get(match.group(1), {"version": 1, "etag": "ACAB"})
                return self._send(200, policy)
            if match := re.fullmatch(_REPO, path):
                repo = fake.repositories.get(path)
                if repo is None:
                    return self._error(404, "NOT_FOUND", f"Requested entity was not found: {path}")
                return self._send(200, repo)
            if match := re.fullmatch(rf"({_REPO})/packages", path):
                return self._list_packages(match)
            if match := re.fullmatch(rf"({_REPO})/packages/(?P<package>[^/]+)/tags", path):
                return self._list_tags(match)
            return self._error(404, "NOT_FOUND", f"no route GET {url.path}")

        def do_DELETE(self) -> None:
            if not self._authorised():
                return None
            url = urlsplit(self.path)
            fake.calls.append(f"DELETE {url.path}")
            path = self._by_id(url.path.removeprefix("/v1/"))
            parent = "/".join(path.split("/")[:4])
            if re.fullmatch(_POOL, path) or re.fullmatch(_PROVIDER, path):
                found = fake.pools.get(path) or fake.providers.get(path)
                if found is None or found["state"] == "DELETED":
                    return self._error(404, "NOT_FOUND", f"Requested entity was not found: {path}")
                found["state"] = "DELETED"  # soft: the id stays taken for 30 days
                return self._send(200, fake.operation(path, found, done=True))
            if match := re.fullmatch(_ACCOUNT, path):
                with fake.lock:
                    if fake.accounts.pop(match["email"], None) is None:
                        return self._error(404, "NOT_FOUND", f"Unknown service account {path}")
                    fake.account_policies.pop(match["email"], None)
                return self._send(200, {})
            if match := re.fullmatch(_REPO, path):
                with fake.lock:
                    if fake.repositories.pop(path, None) is None:
                        return self._error(404, "NOT_FOUND", f"Repository {path} not found")
                    fake.policies.pop(path, None)
                for image in fake.images(match["project"], match["repo"]):
                    fake.backing.delete(f"{match['project']}/{match['repo']}/{image}")
                empty = {"@type": "type.googleapis.com/google.protobuf.Empty"}
                return self._send(200, fake.operation(parent, empty, done=True))
            if match := re.fullmatch(rf"({_REPO})/packages/(?P<package>[^/]+)", path):
                image = unquote(match["package"])
                if image not in fake.images(match["project"], match["repo"]):
                    return self._error(404, "NOT_FOUND", f"Package {path} not found")
                fake.backing.delete(f"{match['project']}/{match['repo']}/{image}")
                empty = {"@type": "type.googleapis.com/google.protobuf.Empty"}
                return self._send(200, fake.operation(parent, empty, done=False))
            return self._error(404, "NOT_FOUND", f"no route DELETE {url.path}")

        # --- handlers ---------------------------------------------------------------

        def _token(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                return self._send(400, {"error": "unsupported_grant_type"})
            claims = jwt.decode(form["assertion"][0], options={"verify_signature": False})
            if "cloud-platform" not in claims.get("scope", ""):
                return self._send(400, {"error": "invalid_scope"})
            token = fake.issue_token(f"serviceAccount:{claims['iss']}")
            return self._send(
                200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
            )

        def _create(self, parent: str, query: dict[str, list[str]], body: dict) -> None:
            repository_id = query.get("repositoryId", [""])[0]
            if not re.fullmatch(r"[a-z]([a-z0-9-]*[a-z0-9])?", repository_id):
                message = f"invalid repository id {repository_id}"
                return self._error(400, "INVALID_ARGUMENT", message)
            name = f"{parent}/repositories/{repository_id}"
            with fake.lock:
                if name in fake.repositories:
                    message = f"the repository already exists: {name}"
                    return self._error(409, "ALREADY_EXISTS", message)
                repo = {
                    **body,
                    "name": name,
                    "format": "DOCKER" if body.get("format") in (1, "DOCKER") else body["format"],
                    "createTime": "2026-11-26T00:00:00Z",
                }
                fake.repositories[name] = repo
            # Not done yet: the client must poll operations.get, as against the real API.
            return self._send(
                200, fake.operation(parent, {"@type": _TYPES + "Repository", **repo}, done=False)
            )

        def _list_repositories(self, parent: str, query: dict[str, list[str]]) -> None:
            names = sorted(n for n in fake.repositories if n.startswith(parent + "/"))
            start = int(query.get("pageToken", ["0"])[0] or 0)
            size = int(query.get("pageSize", ["2"])[0] or 2)  # small pages: paging is exercised
            page = names[start : start + size]
            body: dict[str, Any] = {"repositories": [fake.repositories[n] for n in page]}
            if start + size < len(names):
                body["nextPageToken"] = str(start + size)
            return self._send(200, body)

        def _list_packages(self, match: re.Match[str]) -> None:
            if match.group(1) not in fake.repositories:
                return self._error(404, "NOT_FOUND", f"Repository {match.group(1)} not found")
            packages = [
                {"name": f"{match.group(1)}/packages/{quote(image, safe='')}"}
                for image in fake.images(match["project"], match["repo"])
            ]
            return self._send(200, {"packages": packages})

        def _list_tags(self, match: re.Match[str]) -> None:
            image = unquote(match["package"])
            if image not in fake.images(match["project"], match["repo"]):
                return self._error(404, "NOT_FOUND", "Package not found")
            package = f"{match.group(1)}/packages/{match['package']}"
            full = f"{match['project']}/{match['repo']}/{image}"
            tags = [
                {"name": f"{package}/tags/{tag}", "version": f"{package}/versions/{digest}"}
                for tag, digest in fake.backing.tags(full).items()
            ]
            return self._send(200, {"tags": tags})

        def _set_policy(self, resource: str, body: dict[str, Any]) -> None:
            if resource not in fake.repositories:
                return self._error(404, "NOT_FOUND", f"Repository {resource} not found")
            policy = body["policy"]
            for binding in policy.get("bindings", []):
                for member in binding["members"]:
                    email = member.removeprefix("serviceAccount:")
                    if member.startswith("serviceAccount:") and not (
                        email in fake.accounts or email in fake.service_accounts
                    ):
                        message = f"Service account {email} does not exist."
                        return self._error(400, "INVALID_ARGUMENT", message)
            current = fake.policies.get(resource, {"etag": "ACAB"})
            if policy.get("etag") and policy["etag"] != current["etag"]:
                return self._error(409, "ABORTED", "There were concurrent policy changes.")
            policy["etag"] = base64.b64encode(secrets.token_bytes(6)).decode()
            policy.setdefault("version", 1)
            fake.policies[resource] = policy
            return self._send(200, policy)

        # --- IAM: workload identity federation and service accounts --------------------

        def _numbered(self, name: str) -> str:
            """The name as IAM answers it: projects/<number>/..."""
            return re.sub(r"^projects/[^/]+/", f"projects/{fake.project_number}/", name)

        def _by_id(self, name: str) -> str:
            """The name as this fake keeps it: IAM takes the project's number or its id."""
            kept = [*fake.pools, *fake.providers]
            return next((key for key in kept if self._numbered(key) == name), name)

        def _create_pool(self, parent: str, query: dict[str, list[str]], body: dict) -> None:
            pool_id = query.get("workloadIdentityPoolId", [""])[0]
            if not _POOL_ID.fullmatch(pool_id) or pool_id.startswith("gcp-"):
                message = f"Invalid pool id {pool_id!r}: 4-32 of [a-z0-9-], not 'gcp-...'"
                return self._error(400, "INVALID_ARGUMENT", message)
            name = f"{parent}/{pool_id}"
            with fake.lock:
                if name in fake.pools:  # a soft-deleted pool keeps its id too
                    return self._error(409, "ALREADY_EXISTS", f"Pool {pool_id} already exists.")
                fake.pools[name] = {**body, "name": self._numbered(name), "state": "ACTIVE"}
            return self._send(200, fake.operation(name, fake.pools[name], done=False))

        def _create_provider(self, match: re.Match[str], query: dict[str, list[str]], body: dict):
            provider_id = query.get("workloadIdentityPoolProviderId", [""])[0]
            pool = fake.pools.get(match.group(1))
            if pool is None or pool["state"] == "DELETED":
                return self._error(404, "NOT_FOUND", f"Pool {match.group(1)} not found")
            if not _POOL_ID.fullmatch(provider_id) or provider_id.startswith("gcp-"):
                message = f"Invalid provider id {provider_id!r}"
                return self._error(400, "INVALID_ARGUMENT", message)
            if refusal := self._provider_refusal(body):
                return self._error(400, "INVALID_ARGUMENT", refusal)
            name = f"{match.group(1)}/providers/{provider_id}"
            with fake.lock:
                if name in fake.providers:
                    return self._error(409, "ALREADY_EXISTS", f"Provider {provider_id} exists.")
                fake.providers[name] = {**body, "name": self._numbered(name), "state": "ACTIVE"}
            return self._send(200, fake.operation(name, fake.providers[name], done=False))

        def _provider_refusal(self, body: dict[str, Any]) -> str | None:
            if len(body.get("displayName", "")) > 32:
                return "displayName must be at most 32 characters"
            if "google.subject" not in body.get("attributeMapping", {}):
                return "attributeMapping must map google.subject"
            issuer = body.get("oidc", {}).get("issuerUri", "")
            if not issuer.startswith("https://"):
                return "oidc.issuerUri must be an https URL"
            condition = body.get("attributeCondition", "")
            if "token.actions.githubusercontent.com" in issuer and not condition:
                return "The attribute condition must reference one of the provider's claims."
            if condition and not all(
                _CONDITION.fullmatch(c.strip()) for c in condition.split("&&")
            ):
                return f"the fake cannot evaluate the condition {condition!r}"
            return None

        def do_PATCH(self) -> None:
            if not self._authorised():
                return None
            url = urlsplit(self.path)
            fake.calls.append(f"PATCH {url.path}")
            path = url.path.removeprefix("/v1/")
            if re.fullmatch(_REPO, path):
                return self._update_repository(path, parse_qs(url.query))
            found = fake.providers.get(path)
            if found is None or found["state"] == "DELETED":
                return self._error(404, "NOT_FOUND", f"Requested entity was not found: {path}")
            body = self._body()
            mask = parse_qs(url.query).get("updateMask", [""])[0].split(",")
            if refusal := self._provider_refusal({**found, **body}):
                return self._error(400, "INVALID_ARGUMENT", refusal)
            for field_name in mask:
                if field_name in body:
                    found[field_name] = body[field_name]
            return self._send(200, fake.operation(path, found, done=False))

        def _update_repository(self, path: str, query: dict[str, list[str]]) -> None:
            """repositories.patch: the fields updateMask names, from the body (synchronous)."""
            body = self._body()
            mask = [f for f in query.get("updateMask", [""])[0].split(",") if f]
            if not mask:
                return self._error(400, "INVALID_ARGUMENT", "updateMask is required")
            with fake.lock:
                repo = fake.repositories.get(path)
                if repo is None:
                    return self._error(404, "NOT_FOUND", f"Requested entity was not found: {path}")
                for field_name in mask:
                    camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), field_name)
                    if camel not in ("labels", "cleanupPolicies", "description"):
                        return self._error(400, "INVALID_ARGUMENT", f"cannot update {field_name}")
                    repo[camel] = body.get(camel, {})
            return self._send(200, repo)

        def _undelete(self, name: str) -> None:
            found = fake.pools.get(name) or fake.providers.get(name)
            if found is None:
                return self._error(404, "NOT_FOUND", f"Requested entity was not found: {name}")
            if found["state"] != "DELETED":
                return self._error(400, "FAILED_PRECONDITION", f"{name} is not deleted.")
            found["state"] = "ACTIVE"
            return self._send(200, fake.operation(name, found, done=True))

        def _create_account(self, project: str, body: dict[str, Any]) -> None:
            account_id = body.get("accountId", "")
            if not (6 <= len(account_id) <= 30 and _ACCOUNT_ID.fullmatch(account_id)):
                message = f"Invalid account id {account_id!r}: 6-30 of [a-z0-9-], a letter first"
                return self._error(400, "INVALID_ARGUMENT", message)
            email = f"{account_id}@{project}.iam.gserviceaccount.com"
            with fake.lock:
                if email in fake.accounts:
                    return self._error(409, "ALREADY_EXISTS", f"Service account {email} exists.")
                fake.accounts[email] = {
                    **body.get("serviceAccount", {}),
                    "name": f"projects/{project}/serviceAccounts/{email}",
                    "email": email,
                    "projectId": project,
                }
            return self._send(200, fake.accounts[email])

        def _list_accounts(self, project: str, query: dict[str, list[str]]) -> None:
            emails = sorted(e for e, a in fake.accounts.items() if a["projectId"] == project)
            start = int(query.get("pageToken", ["0"])[0] or 0)
            size = min(int(query.get("pageSize", ["2"])[0] or 2), 2)  # small pages: paging
            body: dict[str, Any] = {"accounts": [fake.accounts[e] for e in emails[start:][:size]]}
            if start + size < len(emails):
                body["nextPageToken"] = str(start + size)
            return self._send(200, body)

        def _set_account_policy(self, email: str, body: dict[str, Any]) -> None:
            if email not in fake.accounts:
                return self._error(404, "NOT_FOUND", f"Unknown service account {email}")
            for binding in body["policy"].get("bindings", []):
                for member in binding["members"]:
                    if not re.match(r"(principal|principalSet|user|serviceAccount|group):", member):
                        return self._error(400, "INVALID_ARGUMENT", f"Invalid member {member}")
            policy = {**body["policy"], "etag": base64.b64encode(secrets.token_bytes(6)).decode()}
            fake.account_policies[email] = policy
            return self._send(200, policy)

        # --- STS and IAM Credentials: what google-github-actions/auth calls ------------

        def _sts_exchange(self, body: dict[str, Any]) -> None:
            def refuse(message: str) -> None:
                return self._send(400, {"error": "invalid_grant", "error_description": message})

            if body.get("grantType") != "urn:ietf:params:oauth:grant-type:token-exchange":
                return self._send(400, {"error": "unsupported_grant_type"})
            audience = body.get("audience", "").removeprefix("//iam.googleapis.com/")
            provider = next((p for p in fake.providers.values() if p["name"] == audience), None)
            pool_name = audience.split("/providers/")[0]
            pool = next((p for p in fake.pools.values() if p["name"] == pool_name), None)
            if (
                provider is None
                or provider["state"] == "DELETED"
                or (pool is None or pool["state"] == "DELETED")
            ):
                return refuse(f"The audience {body.get('audience')} is not a valid provider.")
            token = body.get("subjectToken", "")
            try:
                issuer = jwt.decode(token, options={"verify_signature": False})["iss"]
                if issuer != provider["oidc"]["issuerUri"] or issuer not in fake.oidc_issuers:
                    return refuse(f"The issuer {issuer} does not match the provider's.")
                claims = jwt.decode(
                    token,
                    fake.oidc_issuers[issuer],
                    algorithms=["RS256"],
                    audience=f"https://iam.googleapis.com/{audience}",
                )
            except (jwt.PyJWTError, KeyError) as exc:
                return refuse(f"Invalid subject token: {exc}")
            if not _condition_holds(provider.get("attributeCondition", ""), claims):
                return refuse("The given credential is rejected by the attribute condition.")
            member = f"principal://iam.googleapis.com/{pool_name}/subject/{claims['sub']}"
            federated = fake.issue_token(member)
            return self._send(
                200,
                {
                    "access_token": federated,
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                },
            )

        def _generate_access_token(self, email: str) -> None:
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            member = fake.member(bearer)
            if email not in fake.accounts:
                return self._error(404, "NOT_FOUND", f"Unknown service account {email}")
            bindings = fake.account_policies.get(email, {}).get("bindings", [])
            if not any(
                b["role"] == "roles/iam.workloadIdentityUser" and member in b["members"]
                for b in bindings
            ):
                message = "Permission 'iam.serviceAccounts.getAccessToken' denied on resource"
                return self._error(403, "PERMISSION_DENIED", message)
            token = fake.issue_token(f"serviceAccount:{email}")
            return self._send(200, {"accessToken": token, "expireTime": "2026-11-27T23:00:00Z"})

    return Handler
