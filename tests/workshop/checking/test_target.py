"""A submission is read, never run or followed, on the grading machine: the probe runs
isolated from the student's modules, and the files the checks read or send are the lab
directory's own regular files (hostile inputs made here, not kept in the repository)."""

from __future__ import annotations

import http.server
import os
import threading

import pytest

from workshop.checking import target
from workshop.checking.target import LocalTarget


@pytest.fixture
def server():
    """A local HTTP server that records the bodies it is sent."""
    bodies: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", bodies
    httpd.shutdown()


@pytest.mark.parametrize("module", ["argparse", "json", "urllib", "socket", "sitecustomize"])
def test_a_module_in_the_submission_never_runs_when_the_probe_does(tmp_path, module, server):
    url, _ = server
    marker = tmp_path / "ran"
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    seen = LocalTarget(tmp_path / "work").probe("http", "POST", url, "--json", "{}")
    assert not marker.exists(), f"the submission's {module}.py ran on the grading machine"
    assert seen.get("status") == 200, seen


def test_a_request_file_linking_outside_is_refused_and_never_sent(tmp_path, server):
    url, bodies = server
    work = tmp_path / "work"
    work.mkdir()
    (work / "request.json").symlink_to("/proc/self/environ")
    seen = LocalTarget(work).probe("http", "POST", url, "--json-file", str(work / "request.json"))
    assert "leads outside the lab directory" in seen.get("error", ""), seen
    assert bodies == []
    (work / "inside.json").write_text('{"ok": 1}')
    (work / "alias.json").symlink_to("inside.json")  # a link inside is the student's file
    seen = LocalTarget(work).probe("http", "POST", url, "--json-file", str(work / "alias.json"))
    assert seen.get("status") == 200, seen
    assert bodies == [b'{"ok": 1}']


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda work: (work / "README.md").symlink_to("/etc/passwd"), "a link out"),
        (lambda work: (work / "README.md").symlink_to("/dev/zero"), "a device"),
        (lambda work: os.mkfifo(work / "README.md"), "a pipe that never ends"),
        (lambda work: (work / "README.md").write_bytes(b"#" * (2 * 1024 * 1024)), "2 MB"),
    ],
)
def test_a_file_the_checks_read_is_the_directorys_own_and_bounded(tmp_path, make, why):
    work = tmp_path / "work"
    work.mkdir()
    make(work)
    assert LocalTarget(work).read_text("README.md") is None, why


def test_an_ordinary_file_is_read(tmp_path):
    work = tmp_path / "work"
    (work / "docs").mkdir(parents=True)
    (work / "docs" / "README.md").write_text("# Build\n")
    (work / "README.md").symlink_to("docs/README.md")
    assert LocalTarget(work).read_text("README.md") == "# Build\n"


def test_a_service_that_answers_without_end_is_read_only_so_far(tmp_path):
    """An answer streamed forever (a hostile or broken service) is cut at the probe's
    limit: the check goes on instead of filling memory or waiting out its timeout."""

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                pass

        def log_message(self, *_args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/health"
        seen = LocalTarget(tmp_path).probe("http", "GET", url, timeout=60)
    finally:
        httpd.shutdown()
    assert seen.get("status") == 200, seen
    assert len(seen["body"]) <= 65536


def test_a_vms_output_is_kept_up_to_its_bound():
    kept = bytearray()
    for _ in range(3):
        target._bounded(kept, b"y" * (target.OUTPUT_LIMIT // 2))
    assert len(kept) == target.OUTPUT_LIMIT
