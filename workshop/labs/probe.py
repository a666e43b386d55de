"""What a lab check does *on the machine the student's work runs on*, standard library only.

The kit sends this file to ``python3 -`` on the target (this machine, or a student VM
over SSH as the student) and reads one JSON object back from stdout. It is never
imported by the kit's code: the target has a plain Python 3 and the docker CLI, nothing
of ours. Subcommands:

    http METHOD URL [--file PATH | --random-png N | --json-file PATH] [--field NAME]
    wait URL --container NAME [--timeout S]
    graceful URL --container NAME (--file PATH | --json-file PATH) [--stop-timeout S]
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import random
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

BODY_LIMIT = 65536


def random_png(size: int, seed: int) -> bytes:
    """A PNG of random pixels: a new image every call, so no cache answers it."""
    rng = random.Random(seed)  # noqa: S311 (noise, not a secret)
    rows = b"".join(b"\x00" + rng.randbytes(size * 3) for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = f"workshop-{random.getrandbits(64):016x}"
    kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {kind}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def request_body(args: argparse.Namespace) -> tuple[bytes | None, str | None]:
    if getattr(args, "file", None):
        with open(args.file, "rb") as handle:
            return multipart(args.field, os.path.basename(args.file), handle.read())
    if getattr(args, "random_png", None):
        data = random_png(args.random_png, seed=time.time_ns())
        return multipart(args.field, "noise.png", data)
    if getattr(args, "json_file", None):
        with open(args.json_file, "rb") as handle:
            return handle.read(), "application/json"
    return None, None


def http(args: argparse.Namespace) -> dict:
    body, content_type = request_body(args)
    request = urllib.request.Request(args.url, data=body, method=args.method)  # noqa: S310
    if content_type:
        request.add_header("Content-Type", content_type)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    except (OSError, urllib.error.URLError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.monotonic() - started}
    return {
        "status": status,
        "headers": {key.lower(): value for key, value in headers.items()},
        "body": raw[:BODY_LIMIT].decode("utf-8", "replace"),
        "seconds": round(time.monotonic() - started, 3),
    }


def elapsed(started: float) -> float:
    return round(time.monotonic() - started, 1)


def container_state(name: str) -> dict:
    result = subprocess.run(
        ["docker", "inspect", "--format", "{{json .State}}", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return {"Status": "missing", "ExitCode": None}
    return json.loads(result.stdout)


def wait(args: argparse.Namespace) -> dict:
    """Poll URL until it answers 200, the container stops, or the time is up."""
    started = time.monotonic()
    last: dict = {}
    while time.monotonic() - started < args.timeout:
        state = container_state(args.container)
        if state.get("Status") not in ("running", "created", "restarting"):
            return {
                "ok": False,
                "state": state.get("Status"),
                "exit_code": state.get("ExitCode"),
                "seconds": round(time.monotonic() - started, 1),
            }
        try:
            with urllib.request.urlopen(args.url, timeout=3) as response:  # noqa: S310
                last = {"status": response.status}
                if response.status == 200:
                    return {"ok": True, "status": 200, "seconds": elapsed(started)}
        except urllib.error.HTTPError as exc:
            last = {"status": exc.code}
        except (OSError, urllib.error.URLError) as exc:
            last = {"error": f"{type(exc).__name__}: {exc}"}
        time.sleep(0.5)
    return {"ok": False, "state": "running", "last": last, "seconds": elapsed(started)}


def read_response(sock: socket.socket) -> tuple[int | None, str]:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    raw = b"".join(chunks)
    if not raw.startswith(b"HTTP/"):
        return None, raw[:200].decode("latin-1")
    status_line = raw.split(b"\r\n", 1)[0].decode("latin-1")
    return int(status_line.split()[1]), status_line


def graceful(args: argparse.Namespace) -> dict:
    """Hold a request open (its body half sent), ``docker stop`` the container, then send
    the rest: a server that drains in-flight requests on SIGTERM answers it and exits 0."""
    body, content_type = request_body(args)
    if body is None:
        return {"error": "graceful needs --file or --json-file"}
    url = urllib.parse.urlsplit(args.url)
    head = (
        f"POST {url.path or '/'}{'?' + url.query if url.query else ''} HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    half = len(body) // 2
    result: dict = {"stop_timeout": args.stop_timeout}
    sock = socket.create_connection((url.hostname, url.port or 80), timeout=args.stop_timeout + 30)
    try:
        sock.sendall(head + body[:half])
        time.sleep(args.settle)  # the server has the request: it is waiting for the body
        started = time.monotonic()
        stopper = subprocess.Popen(
            ["docker", "stop", "--time", str(args.stop_timeout), args.container],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(args.hold)  # SIGTERM has arrived while the request is in flight
        try:
            sock.sendall(body[half:])
            status, line = read_response(sock)
            result.update(status=status, response=line)
            if status is None:
                result["lost"] = "the connection closed without an HTTP response"
        except OSError as exc:
            result.update(status=None, lost=f"the connection broke: {exc}")
        result["response_seconds"] = round(time.monotonic() - started, 2)
        stopper.wait(timeout=args.stop_timeout + 30)
        result["stop_seconds"] = round(time.monotonic() - started, 2)
    finally:
        sock.close()
    state = container_state(args.container)
    result["exit_code"] = state.get("ExitCode")
    result["oom_killed"] = state.get("OOMKilled")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="probe")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("http")
    one.add_argument("method")
    one.add_argument("url")
    one.add_argument("--timeout", type=float, default=60)
    for sub in (one, graceful_parser := commands.add_parser("graceful")):
        sub.add_argument("--file")
        sub.add_argument("--json-file")
        sub.add_argument("--field", default="file")
    one.add_argument("--random-png", type=int)
    graceful_parser.add_argument("url")
    graceful_parser.add_argument("--container", required=True)
    graceful_parser.add_argument("--stop-timeout", type=int, default=15)
    graceful_parser.add_argument("--settle", type=float, default=0.7)
    graceful_parser.add_argument("--hold", type=float, default=1.5)
    waiter = commands.add_parser("wait")
    waiter.add_argument("url")
    waiter.add_argument("--container", required=True)
    waiter.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()
    handler = {"http": http, "wait": wait, "graceful": graceful}[args.command]
    json.dump(handler(args), sys.stdout)


if __name__ == "__main__":
    main()
