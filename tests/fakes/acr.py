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
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

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


class AcrServer:
    """The fake ACR; ``start()`` also starts the distribution registry behind it."""

    def __init__(self, root: Path, *, subscription: str, resource_group: str, name: str) -> None:
        self.subscription = subscription
        self.resource_group = resource_group
        self.name = name
        self.entra_tokens: set[str] = set()
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
        """What a login may do: everything as the refresh-token user, else its scope map."""
        granted = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = set(actions.split(","))
            if token_name is None:
                granted.append({"type": kind, "name": name, "actions": sorted(wanted)})
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
            return None if claims and claims.get("grant_type") == "refresh_token" else False
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
                        "sku": {"name": "Premium", "tier": "Premium"},
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
                refresh = fake.sign(
                    {"sub": "instructor", "grant_type": "refresh_token"}, dt.timedelta(hours=3)
                )
                return self._send(200, {"refresh_token": refresh})
            if method == "POST" and url.path == "/oauth2/token":
                form = parse_qs(self._body().decode())
                login = fake.check_login(ZERO_USER, form.get("refresh_token", [""])[0])
                if login is False:
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                access = fake.allowed(None, form.get("scope", []))
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
