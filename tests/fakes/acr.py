"""A local HTTPS server speaking Azure Container Registry's wire protocols.

- ARM (``management.azure.com``) for the calls the kit makes: registries get, scopeMaps and
  tokens create (asynchronous, polled through ``Azure-AsyncOperation``), list and delete,
  and ``generateCredentials``; every call needs the Entra ID bearer the test's credential
  hands out.
- The registry's token service: ``POST /oauth2/exchange`` (Entra ID token -> ACR refresh
  token), ``POST /oauth2/token`` (refresh token -> access token, for the data-plane SDK) and
  ``GET /oauth2/token`` (Docker's basic-auth token request, with a scope-map token's name and
  password, or the refresh token as ACR's all-zero user).
- The data plane's ``/acr/v1`` catalog, tags and repository delete.
- For keyless CI: Microsoft Graph's applications, service principals and federated
  identity credentials (``/v1.0``, Graph-audience tokens only; Graph's name and issuer
  rules), ARM role assignments at the registry's scope (a principal Entra ID does not know
  is ``PrincipalNotFound``), and Entra ID's token endpoint for a client assertion
  (``/<tenant>/oauth2/v2.0/token``: a GitHub token signed by a key in ``oidc_issuers``
  whose issuer, subject and audience match one of the app's federated credentials gives
  its service principal a token). A principal's registry rights are its role assignments
  (AcrPush: pull and push; AcrPull: pull).

Images live in a real distribution registry configured for token auth with this server as
its realm: access tokens are JWTs signed with ``signing`` (x5c header), so the registry
itself enforces what each scope map grants: Docker really logs in, pushes, and is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jwt

from tests.fakes.distribution import Distribution, TokenSigner
from workshop.labcloud import pki

ZERO_USER = "00000000-0000-0000-0000-000000000000"
_ARM = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.ContainerRegistry/registries/(?P<registry>[^/]+)"
)
_ACTIONS = {"content/read": "pull", "content/write": "push", "content/delete": "delete"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


ARM_AUDIENCE = "https://management.azure.com"
ACR_AUDIENCE = "https://containerregistry.azure.net"
GRAPH_AUDIENCE = "https://graph.microsoft.com"
# Built-in role definition ids -> what they allow in the registry.
ROLES = {
    "8311e382-0749-4cb8-b61a-304f252e45ec": {"pull", "push"},  # AcrPush
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": {"pull"},  # AcrPull
}
_FILTER = re.compile(r"(?:tags/any\(t:t eq '(?P<tag>[^']*)'\)|appId eq '(?P<app>[^']*)')")


class AcrServer:
    """The fake ACR; ``start()`` also starts the distribution registry behind it."""

    def __init__(self, root: Path, *, subscription: str, resource_group: str, name: str) -> None:
        self.subscription = subscription
        self.resource_group = resource_group
        self.name = name
        self.entra_tokens: set[str] = set()
        self.tenant = "11111111-2222-3333-4444-555555555555"
        # Entra ID and Graph: app registrations and service principals by object id, their
        # federated credentials, which Entra token belongs to which principal, the OIDC
        # issuers Entra trusts (-> public key), and role assignments on the registry.
        self.applications: dict[str, dict[str, Any]] = {}
        self.principals: dict[str, dict[str, Any]] = {}
        self.federated: dict[str, list[dict[str, Any]]] = {}
        self.identities: dict[str, str] = {}
        self.oidc_issuers: dict[str, Any] = {}
        self.role_assignments: dict[str, dict[str, Any]] = {}
        # Entra ID replicates a new app registration (and principal) for seconds before the
        # rest of Graph and ARM see it: for this long after creation, a service principal
        # or federated credential naming the app, or a role assignment naming the
        # principal, is refused as the real services refuse it.
        self.replication_seconds = 0.0
        self.sku = "Premium"  # the registry's tier (Basic, Standard, Premium)
        self.created: dict[str, float] = {}  # object id or appId -> when it was made
        # The Azure Policy that disables ARM-audience tokens for registry logins (Microsoft
        # recommends it): then /oauth2/exchange takes only containerregistry.azure.net.
        self.arm_audience_allowed = False
        # Catalog and tag lists come in pages of this many (ACR's default is 100).
        self.page_size = 100
        self.scope_maps: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.passwords: dict[str, tuple[str, dt.datetime]] = {}  # token name -> (value, expiry)
        self.operations: dict[str, int] = {}  # id -> polls left before Succeeded
        self.results: dict[str, Any] = {}  # generateCredentials operation id -> its result
        self.calls: list[str] = []
        self.lock = threading.Lock()

        ca = pki.certificate_authority("fake-acr")
        tls = pki.server_certificate(ca, ["localhost"], ["127.0.0.1"])
        self.ca_file = root / "ca.crt"
        self.ca_file.write_bytes(ca.public)
        (root / "tls.pem").write_bytes(tls.public + tls.private)
        # The token signer: a self-signed certificate the registry trusts (rootcertbundle).
        self._signer = TokenSigner(root, "fake-acr")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(root / "tls.pem")
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.registry = Distribution(root / "registry")
        # As in ACR, the token service's "service" is the login server.
        self.registry.token_auth = self._signer.auth(
            f"{self.endpoint}/oauth2/token", self.registry.address
        )
        self.registry.bearer = self._full_access

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def login_server(self) -> str:
        return self.registry.address

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerRegistry/registries/{self.name}"
        )

    def start(self) -> AcrServer:
        self._thread.start()
        self.registry.start()
        return self

    def stop(self) -> None:
        self.registry.stop()
        self._server.shutdown()
        self._server.server_close()

    # --- tokens -------------------------------------------------------------------------

    def page(self, items: list[str], query: str, path: str) -> tuple[list[str], dict[str, str]]:
        """One page of a sorted list as ACR serves it: ``n`` per page (default
        ``page_size``), after ``last``, and a ``Link: <...>; rel="next"`` while more remain."""
        params = parse_qs(query)
        size = int(params.get("n", [str(self.page_size)])[0])
        last = params.get("last", [""])[0]
        rest = [item for item in items if item > last] if last else items
        page = rest[:size]
        if len(rest) <= size:
            return page, {}
        return page, {"Link": f'<{path}?last={quote(page[-1], safe="")}&n={size}>; rel="next"'}

    def replicating(self, object_id: str | None) -> bool:
        """Whether Entra ID is still replicating the object (made moments ago)."""
        made = self.created.get(str(object_id))
        return made is not None and time.monotonic() - made < self.replication_seconds

    def entra_claims(self, token: str) -> dict[str, str] | None:
        """The aud and tid of an Entra ID token this fake's tenant issued (None: not one)."""
        base, *parts = token.split("|")
        if base not in self.entra_tokens:
            return None
        claims = dict(part.split("=", 1) for part in parts if "=" in part)
        return {"aud": claims.get("aud", ""), "tid": claims.get("tid", "")}

    def sign(self, claims: dict[str, Any], lifetime: dt.timedelta) -> str:
        return self._signer.sign(self.login_server, claims, lifetime)

    def verify(self, token: str) -> dict[str, Any] | None:
        return self._signer.verify(token, self.login_server)

    def access_token(self, access: list[dict[str, Any]], subject: str = "instructor") -> str:
        return self.sign({"sub": subject, "access": access}, dt.timedelta(minutes=75))

    def allowed(self, token_name: str | None, scopes: list[str]) -> list[dict[str, Any]]:
        """What a login may do: everything as the instructor's refresh token, a service
        principal's role assignments on the registry, else a token's scope map."""
        granted = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = set(actions.split(","))
            if token_name is None:
                granted.append({"type": kind, "name": name, "actions": sorted(wanted)})
                continue
            if token_name.startswith("principal:"):
                roles = [
                    a["properties"]["roleDefinitionId"].rsplit("/", 1)[-1]
                    for a in self.role_assignments.values()
                    if a["properties"]["principalId"] == token_name.removeprefix("principal:")
                ]
                may = set().union(*(ROLES.get(role, set()) for role in roles))
                actions_granted = sorted(wanted & may) if kind == "repository" else []
                granted.append({"type": kind, "name": name, "actions": actions_granted})
                continue
            token = self.tokens.get(token_name)
            scope_map = self.scope_maps.get(
                (token or {}).get("properties", {}).get("scopeMapId", "").rsplit("/", 1)[-1], {}
            )
            may = set()
            for action in scope_map.get("properties", {}).get("actions", []):
                match = re.fullmatch(r"repositories/(.+)/(content/\w+|metadata/\w+)", action)
                if kind == "repository" and match and match.group(1) == name:
                    may.add(_ACTIONS.get(match.group(2), ""))
            granted.append({"type": kind, "name": name, "actions": sorted(wanted & may)})
        return granted

    def check_login(self, username: str, password: str) -> str | bool | None:
        """The token name a basic-auth login is (None: the all-access user); False: refused."""
        if username == ZERO_USER:
            claims = self.verify(password)
            if not claims or claims.get("grant_type") != "refresh_token":
                return False
            return None if claims["sub"] == "instructor" else f"principal:{claims['sub']}"
        stored = self.passwords.get(username)
        if stored and secrets.compare_digest(stored[0], password) and stored[1] > _now():
            status = self.tokens.get(username, {}).get("properties", {}).get("status")
            return username if status == "enabled" else False
        return False

    def _full_access(self, repository: str | None) -> str:
        """What the fake itself reads the registry with."""
        if repository is None:
            return self.access_token([{"type": "registry", "name": "catalog", "actions": ["*"]}])
        return self.access_token([{"type": "repository", "name": repository, "actions": ["*"]}])


def _handler(fake: AcrServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any = None, headers: dict | None = None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        def _arm_error(self, status: int, code: str, message: str) -> None:
            self._send(status, {"error": {"code": code, "message": message}})

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _arm_authorised(self) -> bool:
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            claims = fake.entra_claims(bearer)
            if claims is None:
                self._arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
                return False
            if claims["aud"] != ARM_AUDIENCE:
                self._arm_error(
                    401,
                    "InvalidAuthenticationTokenAudience",
                    f"The access token has been obtained for wrong audience or resource "
                    f"'{claims['aud']}'.",
                )
                return False
            return True

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            fake.calls.append(f"{method} {url.path}")
            if url.path.startswith("/oauth2/"):
                return self._oauth(method, url)
            if url.path.startswith("/acr/v1/"):
                return self._data_plane(method, unquote(url.path), url.query)
            if re.fullmatch(r"/[^/]+/oauth2/v2\.0/token", url.path) and method == "POST":
                return self._entra_token(url.path.split("/")[1])
            if url.path.startswith("/v1.0/"):
                return self._graph(method, url)
            if not self._arm_authorised():
                return None
            match = re.fullmatch(_ARM + r"(?P<rest>/.*)?", url.path)
            if not match or match["registry"] != fake.name or match["rg"] != fake.resource_group:
                return self._arm_error(
                    404, "ResourceNotFound", f"The Resource '{url.path}' was not found."
                )
            return self._arm(method, match["rest"] or "", url)

        def do_GET(self) -> None:
            self._route("GET")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def do_PATCH(self) -> None:
            self._route("PATCH")

        # --- ARM ----------------------------------------------------------------------

        def _arm(self, method: str, rest: str, url: Any) -> None:
            if method == "GET" and rest == "":
                return self._send(
                    200,
                    {
                        "id": fake.resource_id,
                        "name": fake.name,
                        "type": "Microsoft.ContainerRegistry/registries",
                        "location": "westeurope",
                        "sku": {"name": fake.sku, "tier": fake.sku},
                        "properties": {
                            "loginServer": fake.login_server,
                            "provisioningState": "Succeeded",
                            "adminUserEnabled": False,
                        },
                    },
                )
            if match := re.fullmatch(r"/operationStatuses/([\w-]+)", rest):
                with fake.lock:
                    left = fake.operations.get(match.group(1), 0)
                    fake.operations[match.group(1)] = max(0, left - 1)
                return self._send(
                    200,
                    {"status": "InProgress" if left else "Succeeded"},
                    headers={"Retry-After": "0"},
                )
            if rest == "/generateCredentials" and method == "POST":
                return self._generate(json.loads(self._body()))
            if match := re.fullmatch(r"/generateCredentials/operationResults/([\w-]+)", rest):
                with fake.lock:
                    left = fake.operations.get(match.group(1), 0)
                    fake.operations[match.group(1)] = max(0, left - 1)
                    result = fake.results.get(match.group(1))
                if result is None:
                    return self._arm_error(404, "NotFound", "no such operation")
                if left:  # still running: the same Location again
                    return self._send(
                        202, None, {"Location": self._location(match.group(1)), "Retry-After": "0"}
                    )
                return self._send(200, result)
            if match := re.fullmatch(
                r"/providers/Microsoft\.Authorization/roleAssignments(?:/([^/]+))?", rest
            ):
                return self._role_assignment(method, match.group(1), url)
            match = re.fullmatch(r"/(scopeMaps|tokens)(?:/([^/]+))?", rest)
            if not match:
                return self._arm_error(404, "NotFound", f"no route {method} {rest}")
            kind, name = match.groups()
            store = fake.scope_maps if kind == "scopeMaps" else fake.tokens
            if method == "GET" and name is None:
                return self._send(200, {"value": [store[n] for n in sorted(store)]})
            if method == "GET":
                if name not in store:
                    return self._arm_error(404, "ResourceNotFound", f"{kind} {name} not found")
                return self._send(200, store[name])
            if method == "DELETE":
                with fake.lock:
                    existed = store.pop(name, None)
                    if kind == "tokens":
                        fake.passwords.pop(name, None)
                return self._send(200 if existed else 204)
            if method == "PUT":
                return self._put(kind, name, store, json.loads(self._body()))
            return self._arm_error(405, "MethodNotAllowed", method)

        def _put(self, kind: str, name: str, store: dict, body: dict[str, Any]) -> None:
            if not re.fullmatch(r"[A-Za-z0-9_-]{5,50}", name):  # Azure's rule for both
                return self._arm_error(400, "InvalidResourceName", f"invalid name {name}")
            properties = dict(body.get("properties") or {})
            if kind == "tokens":
                scope_map = properties.get("scopeMapId", "").rsplit("/", 1)[-1]
                if scope_map not in fake.scope_maps:
                    return self._arm_error(400, "ScopeMapNotFound", f"no scope map {scope_map}")
                properties.setdefault("status", "enabled")
            resource = {
                "id": f"{fake.resource_id}/{kind}/{name}",
                "name": name,
                "type": f"Microsoft.ContainerRegistry/registries/{kind}",
                "properties": {**properties, "provisioningState": "Succeeded"},
            }
            operation = uuid.uuid4().hex
            with fake.lock:
                created = name not in store
                store[name] = resource
                fake.operations[operation] = 1  # one "InProgress" poll before it succeeds
            status_url = (
                f"{fake.endpoint}{fake.resource_id}/operationStatuses/{operation}"
                "?api-version=2025-11-01"
            )
            return self._send(
                201 if created else 200,
                {**resource, "properties": {**properties, "provisioningState": "Creating"}},
                headers={"Azure-AsyncOperation": status_url, "Retry-After": "0"},
            )

        def _generate(self, body: dict[str, Any]) -> None:
            name = body.get("tokenId", "").rsplit("/", 1)[-1]
            if name not in fake.tokens:
                return self._arm_error(400, "TokenNotFound", f"no token {body.get('tokenId')}")
            expiry = dt.datetime.fromisoformat(body["expiry"]) if body.get("expiry") else None
            expiry = expiry or _now() + dt.timedelta(days=365)
            value = secrets.token_urlsafe(32)
            result = {
                "username": name,
                "passwords": [
                    {
                        "name": body.get("name", "password1"),
                        "value": value,
                        "creationTime": _now().isoformat(),
                        "expiry": expiry.isoformat(),
                    }
                ],
            }
            # As ARM does: 202 Accepted and a Location to poll; the result comes from there.
            operation = uuid.uuid4().hex
            with fake.lock:
                fake.passwords[name] = (value, expiry)
                fake.results[operation] = result
                fake.operations[operation] = 1  # one more 202 before the result
            return self._send(
                202, None, {"Location": self._location(operation), "Retry-After": "0"}
            )

        def _location(self, operation: str) -> str:
            return (
                f"{fake.endpoint}{fake.resource_id}/generateCredentials/operationResults/"
                f"{operation}?api-version=2025-11-01"
            )

        # --- token service ------------------------------------------------------------

        def _oauth(self, method: str, url: Any) -> None:
            if method == "POST" and url.path == "/oauth2/exchange":
                form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
                if form.get("grant_type") not in ("access_token", "access_token_refresh_token"):
                    return self._send(400, {"errors": [{"code": "UNSUPPORTED_GRANT_TYPE"}]})
                if form.get("service") != fake.login_server:
                    return self._send(400, {"errors": [{"code": "INVALID_SERVICE"}]})
                claims = fake.entra_claims(form.get("access_token", ""))
                audiences = {ACR_AUDIENCE, *([ARM_AUDIENCE] if fake.arm_audience_allowed else [])}
                if claims is None or claims["aud"] not in audiences:
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                if form.get("tenant") and form["tenant"] != claims["tid"]:
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                subject = fake.identities.get(form["access_token"].split("|")[0], "instructor")
                refresh = fake.sign(
                    {"sub": subject, "grant_type": "refresh_token"}, dt.timedelta(hours=3)
                )
                return self._send(200, {"refresh_token": refresh})
            if method == "POST" and url.path == "/oauth2/token":
                form = parse_qs(self._body().decode())
                login = fake.check_login(ZERO_USER, form.get("refresh_token", [""])[0])
                if login is False:
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                access = fake.allowed(login, form.get("scope", []))
                return self._send(200, {"access_token": fake.access_token(access)})
            if method == "GET" and url.path == "/oauth2/token":  # Docker's token request
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                login = fake.check_login(user, password)
                if login is False:
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                scopes = parse_qs(url.query).get("scope", [])
                token = fake.access_token(fake.allowed(login, scopes), subject=user)
                return self._send(200, {"token": token, "access_token": token})
            return self._send(404, {"errors": [{"code": "NOT_FOUND"}]})

        # --- role assignments (ARM) ----------------------------------------------------

        def _role_assignment(self, method: str, name: str | None, url: Any) -> None:
            if method == "GET" and name is None:
                wanted = re.search(r"principalId eq '([^']+)'", unquote(url.query))
                found = [
                    a
                    for a in fake.role_assignments.values()
                    if not wanted or a["properties"]["principalId"] == wanted.group(1)
                ]
                return self._send(200, {"value": found})
            if name is None:
                return self._arm_error(405, "MethodNotAllowed", method)
            if method == "DELETE":
                with fake.lock:
                    existed = fake.role_assignments.pop(name, None)
                return self._send(200, existed) if existed else self._send(204)
            if method != "PUT":
                return self._arm_error(405, "MethodNotAllowed", method)
            try:
                uuid.UUID(name)
            except ValueError:
                return self._arm_error(400, "InvalidRoleAssignmentId", f"{name} is not a GUID")
            properties = json.loads(self._body()).get("properties", {})
            role = properties.get("roleDefinitionId", "").rsplit("/", 1)[-1]
            if role not in ROLES:
                message = f"The role definition '{role}' does not exist."
                return self._arm_error(400, "RoleDefinitionDoesNotExist", message)
            principal = properties.get("principalId", "")
            if principal not in fake.principals or fake.replicating(principal):
                message = f"Principal {principal} does not exist in the directory {fake.tenant}."
                return self._arm_error(400, "PrincipalNotFound", message)
            with fake.lock:
                for other, assignment in fake.role_assignments.items():
                    same = assignment["properties"]
                    if other != name and (same["principalId"], same["roleDefinitionId"]) == (
                        principal,
                        properties["roleDefinitionId"],
                    ):
                        message = "The role assignment already exists."
                        return self._arm_error(409, "RoleAssignmentExists", message)
                fake.role_assignments[name] = {
                    "id": f"{fake.resource_id}/providers/Microsoft.Authorization/"
                    f"roleAssignments/{name}",
                    "name": name,
                    "type": "Microsoft.Authorization/roleAssignments",
                    "properties": {**properties, "scope": fake.resource_id},
                }
            return self._send(201, fake.role_assignments[name])

        # --- Microsoft Graph (Entra ID objects) ------------------------------------------

        def _graph_error(self, status: int, code: str, message: str) -> None:
            self._send(status, {"error": {"code": code, "message": message}})

        def _graph(self, method: str, url: Any) -> None:
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            claims = fake.entra_claims(bearer)
            if claims is None or claims["aud"] != GRAPH_AUDIENCE:
                return self._graph_error(
                    401, "InvalidAuthenticationToken", "Access token is invalid."
                )
            path = url.path.removeprefix("/v1.0/")
            body = json.loads(self._body() or b"{}") if method in ("POST", "PATCH") else {}
            if path == "organization" and method == "GET":
                return self._send(200, {"value": [{"id": fake.tenant}]})
            if path in ("applications", "servicePrincipals") and method == "GET":
                store = fake.applications if path == "applications" else fake.principals
                return self._graph_list(store, unquote(url.query))
            if path == "applications" and method == "POST":
                if not body.get("displayName"):
                    return self._graph_error(400, "Request_BadRequest", "displayName is required")
                app = {
                    **body,
                    "id": str(uuid.uuid4()),
                    "appId": str(uuid.uuid4()),
                    "tags": body.get("tags", []),
                }
                fake.applications[app["id"]] = app
                fake.federated[app["id"]] = []
                fake.created[app["id"]] = fake.created[app["appId"]] = time.monotonic()
                return self._send(201, app)
            if path == "servicePrincipals" and method == "POST":
                app_id = body.get("appId")
                if not any(a["appId"] == app_id for a in fake.applications.values()) or (
                    fake.replicating(app_id)
                ):
                    message = (
                        f"The appId '{app_id}' of the service principal does not reference "
                        "a valid application object."
                    )
                    return self._graph_error(400, "Request_BadRequest", message)
                if any(p["appId"] == app_id for p in fake.principals.values()):
                    message = "The service principal for this application already exists."
                    return self._graph_error(
                        409, "Request_MultipleObjectsWithSameKeyValue", message
                    )
                principal = {**body, "id": str(uuid.uuid4())}
                fake.principals[principal["id"]] = principal
                fake.created[principal["id"]] = time.monotonic()
                return self._send(201, principal)
            if match := re.fullmatch(r"(applications|servicePrincipals)/([^/]+)", path):
                store = fake.applications if match[1] == "applications" else fake.principals
                if method != "DELETE":
                    return self._graph_error(405, "Request_BadRequest", method)
                if store.pop(match[2], None) is None:
                    return self._graph_error(
                        404, "Request_ResourceNotFound", f"{match[2]} not found"
                    )
                fake.federated.pop(match[2], None)
                return self._send(204)
            match = re.fullmatch(
                r"applications/([^/]+)/federatedIdentityCredentials(?:/([^/]+))?", path
            )
            if match:
                return self._federated(method, match[1], match[2], body)
            return self._graph_error(404, "Request_ResourceNotFound", f"no route {method} {path}")

        def _graph_list(self, store: dict[str, dict[str, Any]], query: str) -> None:
            params = parse_qs(query)
            wanted = _FILTER.fullmatch(params.get("$filter", [""])[0])
            if wanted is None:
                return self._graph_error(400, "Request_UnsupportedQuery", "Unsupported filter")
            found = [
                item
                for _, item in sorted(store.items())
                if (wanted["tag"] is not None and wanted["tag"] in item.get("tags", []))
                or (wanted["app"] is not None and item.get("appId") == wanted["app"])
            ]
            start = int(params.get("$skiptoken", ["0"])[0])
            body: dict[str, Any] = {"value": found[start : start + 2]}  # small pages
            if start + 2 < len(found):
                filter_text = quote(params["$filter"][0])
                body["@odata.nextLink"] = (
                    f"{fake.endpoint}/v1.0/{self.path.split('?')[0].removeprefix('/v1.0/')}"
                    f"?$filter={filter_text}&$skiptoken={start + 2}"
                )
            return self._send(200, body)

        def _federated(self, method: str, app: str, name: str | None, body: dict) -> None:
            if app not in fake.applications or fake.replicating(app):
                return self._graph_error(404, "Request_ResourceNotFound", f"{app} not found")
            credentials = fake.federated[app]
            if method == "GET" and name is None:
                return self._send(200, {"value": credentials})
            if method == "POST" and name is None:
                if refusal := self._federated_refusal(body):
                    return self._graph_error(400, "Request_BadRequest", refusal)
                if any(c["name"] == body["name"] for c in credentials):
                    message = (
                        f"FederatedIdentityCredential with name {body['name']} already exists."
                    )
                    return self._graph_error(409, "Request_BadRequest", message)
                credential = {**body, "id": str(uuid.uuid4())}
                credentials.append(credential)
                return self._send(201, credential)
            found = next((c for c in credentials if name in (c["name"], c["id"])), None)
            if found is None:
                return self._graph_error(404, "Request_ResourceNotFound", f"{name} not found")
            if method == "PATCH":
                if refusal := self._federated_refusal({**found, **body}):
                    return self._graph_error(400, "Request_BadRequest", refusal)
                found.update(body)
                return self._send(204)
            if method == "DELETE":
                credentials.remove(found)
                return self._send(204)
            return self._graph_error(405, "Request_BadRequest", method)

        @staticmethod
        def _federated_refusal(body: dict[str, Any]) -> str | None:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,119}", body.get("name", "")):
                return "name must be 3-120 letters, digits, '-' or '_'"
            if not str(body.get("issuer", "")).startswith("https://"):
                return "issuer must be an https URL"
            if not body.get("subject"):
                return "subject is required"
            if len(body.get("audiences", [])) != 1:
                return "audiences must hold exactly one value"
            return None

        # --- Entra ID's token endpoint, for a workload's client assertion ----------------

        def _entra_token(self, tenant: str) -> None:
            form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}

            def refuse(code: str, message: str) -> None:
                return self._send(400, {"error": code, "error_description": message})

            if tenant != fake.tenant:
                return refuse("invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
            if (
                form.get("grant_type") != "client_credentials"
                or form.get("client_assertion_type")
                != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            ):
                return refuse("unsupported_grant_type", "client_credentials with an assertion")
            app = next(
                (a for a in fake.applications.values() if a["appId"] == form.get("client_id")),
                None,
            )
            if app is None:
                return refuse("unauthorized_client", "AADSTS700016: Application not found.")
            assertion = form.get("client_assertion", "")
            try:
                unverified = jwt.decode(assertion, options={"verify_signature": False})
                issuer = unverified["iss"]
                match = next(
                    (
                        c
                        for c in fake.federated.get(app["id"], [])
                        if c["issuer"] == issuer
                        and c["subject"] == unverified.get("sub")
                        and unverified.get("aud") in c["audiences"]
                    ),
                    None,
                )
                if match is None:
                    return refuse(
                        "invalid_client",
                        "AADSTS700213: No matching federated identity record found for "
                        f"presented assertion subject '{unverified.get('sub')}'.",
                    )
                jwt.decode(
                    assertion,
                    fake.oidc_issuers[issuer],
                    algorithms=["RS256"],
                    audience=match["audiences"][0],
                )
            except (jwt.PyJWTError, KeyError) as exc:
                return refuse("invalid_client", f"AADSTS700211/50027: invalid assertion: {exc}")
            principal = next(
                (p for p in fake.principals.values() if p["appId"] == app["appId"]), None
            )
            if principal is None:
                return refuse("unauthorized_client", "AADSTS7000229: no service principal.")
            audience = form.get("scope", "").removesuffix("/.default")
            base = f"sp-{secrets.token_hex(8)}"
            fake.entra_tokens.add(base)
            fake.identities[base] = principal["id"]
            token = f"{base}|aud={audience}|tid={fake.tenant}"
            return self._send(
                200, {"access_token": token, "token_type": "Bearer", "expires_in": 3599}
            )

        # --- /acr/v1 ------------------------------------------------------------------

        def _data_plane(self, method: str, path: str, query: str = "") -> None:
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            claims = fake.verify(bearer) if bearer else None
            if not claims or claims.get("grant_type"):
                scope = "registry:catalog:*"
                match = re.fullmatch(r"/acr/v1/(.+?)(?:/_tags(?:/[^/]+)?)?", path)
                if match and match.group(1) != "_catalog":
                    scope = f"repository:{match.group(1)}:metadata_read,delete"
                challenge = (
                    f'Bearer realm="{fake.endpoint}/oauth2/token",'
                    f'service="{fake.login_server}",scope="{scope}"'
                )
                return self._send(
                    401, {"errors": [{"code": "UNAUTHORIZED"}]}, {"WWW-Authenticate": challenge}
                )
            registry = fake.registry
            # ACR lists, reads and deletes a repository that holds only untagged manifests.
            stored = set(registry.repositories())
            unknown = {"errors": [{"code": "NAME_UNKNOWN", "message": "repository not found"}]}
            if path == "/acr/v1/_catalog" and method == "GET":
                names, link = fake.page(sorted(stored), query, path)
                return self._send(200, {"repositories": names}, link)
            if match := re.fullmatch(r"/acr/v1/(.+)/_tags/([^/]+)", path):
                if method != "DELETE" or not registry.untag(match.group(1), match.group(2)):
                    return self._send(404, unknown)
                return self._send(202)
            if match := re.fullmatch(r"/acr/v1/(.+)/_tags", path):
                if match.group(1) not in stored:
                    return self._send(404, unknown)
                tags = registry.tags(match.group(1))
                names, link = fake.page(sorted(tags), query, path)
                tags = {name: tags[name] for name in names}
                stamp = _now().isoformat()
                return self._send(
                    200,
                    {
                        "registry": fake.login_server,
                        "imageName": match.group(1),
                        "tags": [
                            {
                                "name": tag,
                                "digest": digest,
                                "createdTime": stamp,
                                "lastUpdateTime": stamp,
                                "signed": False,
                                "changeableAttributes": {
                                    "deleteEnabled": True,
                                    "writeEnabled": True,
                                    "readEnabled": True,
                                    "listEnabled": True,
                                },
                            }
                            for tag, digest in sorted(tags.items())
                        ],
                    },
                    link,
                )
            if match := re.fullmatch(r"/acr/v1/(.+)", path):
                repository = match.group(1)
                if repository not in stored:
                    return self._send(404, unknown)
                tags = registry.tags(repository)
                manifests = registry.manifests(repository)
                if method == "GET":
                    stamp = _now().isoformat()
                    return self._send(
                        200,
                        {
                            "registry": fake.login_server,
                            "imageName": repository,
                            "createdTime": stamp,
                            "lastUpdateTime": stamp,
                            "manifestCount": len(manifests),
                            "tagCount": len(tags),
                            "changeableAttributes": {
                                "deleteEnabled": True,
                                "writeEnabled": True,
                                "readEnabled": True,
                                "listEnabled": True,
                            },
                        },
                    )
                if method == "DELETE":
                    registry.delete(repository)
                    return self._send(
                        202, {"manifestsDeleted": manifests, "tagsDeleted": sorted(tags)}
                    )
            return self._send(404, {"errors": [{"code": "NOT_FOUND"}]})

    return Handler
