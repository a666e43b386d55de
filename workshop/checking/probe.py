"""What a lab check does *on the machine the student's work runs on*, standard library only.

The kit sends this file to ``python3 -`` on the target (this machine, or a student VM
over SSH as the student) and reads one JSON object back from stdout. It is never
imported by the kit's code: the target has a plain Python 3 and the docker CLI, nothing
of ours. Subcommands:

    http METHOD URL [--file PATH | --random-png N | --json-file PATH] [--field NAME]
    wait URL... --container NAME [--timeout S] [--any-status]
    graceful URL --container NAME (--file PATH | --json-file PATH | --json TEXT)
             [--stop-timeout S]
    layers IMAGE [--timeout S]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mimetypes
import os
import random
import re
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

BODY_LIMIT = 65536
# The most of an answer the probe reads: a PNG or JSON the checks look at; a service that
# streams without end is cut here, not read into memory.
READ_LIMIT = 32 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def random_png(size: int, seed: int) -> bytes:
    """A PNG of random pixels: a new image every call, so no cache answers it."""
    rng = random.Random(seed)  # noqa: S311 (noise, not a secret)
    rows = b"".join(b"\x00" + rng.randbytes(size * 3) for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
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


FILE_LIMIT = 16 * 1024 * 1024  # a request body the checks send: a photograph, a JSON file


class Refused(Exception):
    """A file of the student's that is not theirs to send (a link out, a device, too big)."""


def read_within(path: str, within: str | None, limit: int = FILE_LIMIT) -> bytes:
    """A regular file of the lab directory ``within``: a link that leads out of it (to
    /proc/self/environ, another user's file), a device (/dev/zero) or a file over
    ``limit`` is refused, never read."""
    real = os.path.realpath(path)
    if within is not None:
        root = os.path.realpath(within)
        if os.path.commonpath([root, real]) != root:
            raise Refused(f"{os.path.basename(path)} leads outside the lab directory")
    descriptor = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise Refused(f"{os.path.basename(path)} is not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise Refused(f"{os.path.basename(path)} is over {limit // (1024 * 1024)} MB")
    return data


def request_body(args: argparse.Namespace) -> tuple[bytes | None, str | None]:
    within = getattr(args, "within", None)
    if getattr(args, "file", None):
        data = read_within(args.file, within)
        return multipart(args.field, os.path.basename(args.file), data)
    if getattr(args, "random_png", None):
        data = random_png(args.random_png, seed=time.time_ns())
        return multipart(args.field, "noise.png", data)
    if getattr(args, "json_file", None):
        return read_within(args.json_file, within), "application/json"
    if getattr(args, "json", None):
        return args.json.encode(), "application/json"
    return None, None


def http(args: argparse.Namespace) -> dict:
    body, content_type = request_body(args)
    request = urllib.request.Request(args.url, data=body, method=args.method)  # noqa: S310
    if content_type:
        request.add_header("Content-Type", content_type)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            status, headers, raw = response.status, response.headers, response.read(READ_LIMIT)
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read(READ_LIMIT)
    except (OSError, urllib.error.URLError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.monotonic() - started}
    answer = {
        "status": status,
        "headers": {key.lower(): value for key, value in headers.items()},
        "body": raw[:BODY_LIMIT].decode("utf-8", "replace"),
        "seconds": round(time.monotonic() - started, 3),
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    if raw[:8] == PNG_SIGNATURE and raw[12:16] == b"IHDR":  # a picture: its size
        answer["png"] = list(struct.unpack(">II", raw[16:24]))
    return answer


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
    """Poll the URLs until the first answers 200, the container stops, or the time is up.
    With --any-status, a non-200 answer also ends the wait once --any-after seconds have
    passed (a service that loads answers 503 first); the other URLs (EXPOSEd ports) count
    once --others-after seconds have passed (a metrics port may be up before $PORT)."""
    started = time.monotonic()
    last: dict = {}
    while time.monotonic() - started < args.timeout:
        state = container_state(args.container)
        if state.get("Status") not in ("running", "created", "restarting"):
            return {
                "ok": False,
                "state": state.get("Status"),
                "exit_code": state.get("ExitCode"),
                "oom_killed": state.get("OOMKilled"),
                "seconds": round(time.monotonic() - started, 1),
            }
        waited = time.monotonic() - started
        urls = args.url if waited >= args.others_after else args.url[:1]
        for url in urls:
            try:
                with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (OSError, urllib.error.URLError) as exc:
                if url == args.url[0]:
                    last = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            if status == 200 or (args.any_status and waited >= args.any_after):
                return {"ok": True, "status": status, "url": url, "seconds": elapsed(started)}
            last = {"status": status, "url": url}
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
        return {"error": "graceful needs --file, --json-file or --json"}
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


# --- what an image's layers hold (the grader's warnings) ---------------------------------

SECRET_FILES = re.compile(
    r"(^|/)(id_(rsa|dsa|ecdsa|ed25519)|\.env|\.netrc|\.pypirc|\.git-credentials"
    r"|\.aws/credentials|\.docker/config\.json|[^/]+\.(pem|key|p12|pfx))$"
)
SECRET_TEXT = {
    "a private key": re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "an AWS access key": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "an AWS secret key": re.compile(
        rb"(?i)aws_secret_access_key\s*[=:]\s*[\"']?[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
    ),
    "a GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "a Slack token": re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "a registry login": re.compile(rb'"auth"\s*:\s*"[A-Za-z0-9+/=]{8,}"'),
}
# system and library trees: a key file there is a package's (test data, CA store)
SYSTEM = re.compile(
    r"^(usr|lib|lib32|lib64|bin|sbin|etc/ssl|etc/ca-certificates|var/lib/dpkg|proc|sys)/"
    r"|/(site-packages|dist-packages|node_modules)/"
)
APT_LISTS = re.compile(r"^var/lib/apt/lists/(?!lock$|partial/|auxfiles/)[^/]+$")
PIP_CACHE = re.compile(r"(^|/)\.cache/pip/.")
TEXT_LIMIT = 262144


def _normal(name: str) -> str:
    return name[2:] if name.startswith("./") else name.lstrip("/")


def _scan_layer(layer: tarfile.TarFile) -> dict:
    """One layer: the files that matter to the warnings, and its whiteouts."""
    found: dict = {"secrets": [], "added": {}, "whiteouts": [], "opaque": []}
    for member in layer:
        name = _normal(member.name)
        base = name.rsplit("/", 1)[-1]
        parent = name[: -len(base)].rstrip("/")
        if base == ".wh..wh..opq":
            found["opaque"].append(parent)
            continue
        if base.startswith(".wh."):
            found["whiteouts"].append(f"{parent}/{base[4:]}".lstrip("/"))
            continue
        if not member.isfile():
            continue
        if APT_LISTS.match(name) or PIP_CACHE.search(name):
            found["added"][name] = member.size
        if SYSTEM.search(name):
            continue
        if SECRET_FILES.search(name) and not name.endswith("extra-ca.crt"):
            found["secrets"].append({"path": name, "kind": "a credentials file"})
            continue
        if 0 < member.size <= TEXT_LIMIT:
            handle = layer.extractfile(member)
            data = handle.read() if handle else b""
            for kind, pattern in SECRET_TEXT.items():
                if pattern.search(data):  # the path and kind only: never the value
                    found["secrets"].append({"path": name, "kind": kind})
                    break
    return found


def layers(args: argparse.Namespace) -> dict:
    """``docker save`` the image and read each layer as it streams past: credentials in
    any layer (a later deletion does not take them out of the image), and apt lists and
    pip caches left in the final filesystem."""
    started = time.monotonic()
    saver = subprocess.Popen(
        ["docker", "save", args.image], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    scanned: dict = {}
    order: list = []
    assert saver.stdout is not None
    try:
        with tarfile.open(fileobj=saver.stdout, mode="r|") as outer:
            for member in outer:
                if time.monotonic() - started > args.timeout:
                    raise TimeoutError(f"reading the layers took over {args.timeout:.0f}s")
                if not member.isfile():
                    continue
                handle = outer.extractfile(member)
                if handle is None:
                    continue
                if member.name == "manifest.json":
                    order = json.loads(handle.read())[0]["Layers"]
                    continue
                if member.size < 512 or member.name.endswith((".json", "VERSION")):
                    continue
                try:
                    with tarfile.open(fileobj=handle, mode="r|*") as layer:
                        scanned[member.name] = _scan_layer(layer)
                except tarfile.ReadError:
                    continue  # a config blob, not a layer
    except (tarfile.TarError, OSError, TimeoutError, ValueError, KeyError) as exc:
        saver.kill()
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        saver.wait(timeout=60)
    if saver.returncode != 0:
        assert saver.stderr is not None
        return {"error": f"docker save failed: {saver.stderr.read().decode()[-300:]}"}
    final: dict = {}
    secrets: list = []
    for index, name in enumerate(order, start=1):
        layer = scanned.get(name, {"secrets": [], "added": {}, "whiteouts": [], "opaque": []})
        for path in layer["opaque"]:
            final = {k: v for k, v in final.items() if not k.startswith(path + "/")}
        for path in layer["whiteouts"]:
            final = {k: v for k, v in final.items() if k != path and not k.startswith(path + "/")}
        final.update(layer["added"])
        secrets += [{**hit, "layer": index} for hit in layer["secrets"]]
    apt = sorted(path for path in final if APT_LISTS.match(path))
    pip = sorted(path for path in final if PIP_CACHE.search(path))
    return {
        "layers": len(order),
        "secrets": secrets,
        "apt_lists": {"files": len(apt), "bytes": sum(final[p] for p in apt)},
        "pip_cache": {"files": len(pip), "bytes": sum(final[p] for p in pip), "first": pip[:3]},
        "seconds": elapsed(started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="probe")
    parser.add_argument("--within", help="the lab directory: files sent are read from it only")
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("http")
    one.add_argument("method")
    one.add_argument("url")
    one.add_argument("--timeout", type=float, default=60)
    for sub in (one, graceful_parser := commands.add_parser("graceful")):
        sub.add_argument("--file")
        sub.add_argument("--json-file")
        sub.add_argument("--json")
        sub.add_argument("--field", default="file")
    one.add_argument("--random-png", type=int)
    graceful_parser.add_argument("url")
    graceful_parser.add_argument("--container", required=True)
    graceful_parser.add_argument("--stop-timeout", type=int, default=15)
    graceful_parser.add_argument("--settle", type=float, default=0.7)
    graceful_parser.add_argument("--hold", type=float, default=1.5)
    waiter = commands.add_parser("wait")
    waiter.add_argument("url", nargs="+")
    waiter.add_argument("--container", required=True)
    waiter.add_argument("--timeout", type=float, default=90)
    waiter.add_argument("--any-status", action="store_true")
    waiter.add_argument("--any-after", type=float, default=0)
    waiter.add_argument("--others-after", type=float, default=0)
    scanner = commands.add_parser("layers")
    scanner.add_argument("image")
    scanner.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    handler = {"http": http, "wait": wait, "graceful": graceful, "layers": layers}[args.command]
    try:
        answer = handler(args)
    except (Refused, OSError) as exc:
        answer = {"error": str(exc) if isinstance(exc, Refused) else f"cannot read: {exc}"}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
