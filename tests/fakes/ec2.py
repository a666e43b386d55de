"""What moto's EC2 does not do, spoken over HTTP to the real boto3 client.

- ``ServiceQuotasServer``: Service Quotas' JSON 1.1 API (GetServiceQuota,
  GetAWSDefaultServiceQuota) for EC2's vCPU quotas, which moto does not serve for EC2.
  Like the real one it refuses unsigned requests, answers NoSuchResourceException for a
  quota never raised in the account (the default then applies) and for unknown codes.
- ``CapacityProxy``: forwards every EC2 query to moto, except RunInstances into a zone
  (or zone and type) marked full, which gets EC2's InsufficientInstanceCapacity (HTTP 500,
  as EC2 answers it) without reaching moto; it counts the RunInstances calls it saw.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.distribution import free_port

DEFAULTS = {  # EC2's default vCPU quotas (a new account's G and P quotas are 0)
    "L-DB2E81BA": ("Running On-Demand G and VT instances", 0.0),
    "L-417A185B": ("Running On-Demand P instances", 0.0),
    "L-1216C47A": ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", 5.0),
}


class _Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> _Server:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError


class ServiceQuotasServer(_Server):
    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[str, float] = {}  # quota code -> value raised for the account

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if "AWS4-HMAC-SHA256 Credential=" not in self.headers.get("Authorization", ""):
                    self.answer(403, {"__type": "AccessDeniedException", "message": "unsigned"})
                    return
                action = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                code = body.get("QuotaCode", "")
                if body.get("ServiceCode") != "ec2" or code not in DEFAULTS:
                    self.answer(
                        400, {"__type": "NoSuchResourceException", "message": f"no quota {code}"}
                    )
                    return
                name, default = DEFAULTS[code]
                if action == "GetServiceQuota":
                    if code not in fake.applied:
                        self.answer(400, {"__type": "NoSuchResourceException", "message": code})
                        return
                    value = fake.applied[code]
                elif action == "GetAWSDefaultServiceQuota":
                    value = default
                else:
                    self.answer(400, {"__type": "InvalidAction", "message": action})
                    return
                quota = {
                    "ServiceCode": "ec2",
                    "QuotaCode": code,
                    "QuotaName": name,
                    "Value": value,
                    "Unit": "None",
                    "Adjustable": True,
                }
                self.answer(200, {"Quota": quota})

        return Handler


class CapacityProxy(_Server):
    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream
        self.full: set[tuple[str, str | None]] = set()  # (zone, type or None for any)
        self.run_calls: list[tuple[str, str]] = []  # (zone, type) of each RunInstances

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                form = dict(urllib.parse.parse_qsl(raw.decode()))
                if form.get("Action") == "RunInstances":
                    zone = form.get("Placement.AvailabilityZone", "")
                    kind = form.get("InstanceType", "")
                    fake.run_calls.append((zone, kind))
                    if (zone, None) in fake.full or (zone, kind) in fake.full:
                        message = (
                            f"We currently do not have sufficient {kind} capacity in the "
                            f"Availability Zone you requested ({zone})."
                        )
                        data = (
                            '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                            f"<Code>InsufficientInstanceCapacity</Code><Message>{message}"
                            "</Message></Error></Errors><RequestID>fake</RequestID></Response>"
                        ).encode()
                        self.send_response(500)
                        self.send_header("Content-Type", "text/xml")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                request = urllib.request.Request(
                    fake.upstream + self.path,
                    data=raw,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                    method="POST",
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as reply:
                        status, headers, data = reply.status, reply.headers, reply.read()
                except urllib.error.HTTPError as error:
                    status, headers, data = error.code, error.headers, error.read()
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
