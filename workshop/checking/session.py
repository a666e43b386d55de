"""One lab checked on one target: the ``Session`` builds what the student built (their
Dockerfile or Compose file, on the classroom's base images), starts it, waits until it
answers, and removes everything it made afterwards. The check kinds (``kinds/``) ask it
for images and running services; the ``Environment`` says what images are called on the
target and who the student is there."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from workshop.checking.dockerfile import dockerfile_args
from workshop.checking.kinds import parse
from workshop.checking.kinds.build import BuildSecret
from workshop.checking.target import Result, Target
from workshop.labs import bases, catalog

# Every container, image and volume a check makes carries this label (with the session id).
LABEL = "org.workshop.check"
HEALTH_TIMEOUT = 90


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
    # Grading an arbitrary submission (``workshop/grading``) rather than a lab's own files: the
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
        # The lab's checks, each parsed by its kind's settings model (a wrong setting is
        # refused here, naming the lab, the check and the field).
        self.checks = parse(lab)
        self.build_secrets = sorted(
            {c.secret_id for c in self.checks if isinstance(c, BuildSecret)}
        )
        # What marks everything this session makes (``docker ... --label``).
        self.label = f"{LABEL}={self.run_id}"

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
            self.label,
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

    def service_spec(self) -> catalog.ImageSpec | None:
        """The image the lab's service runs, as lab.yml describes it."""
        name = self.lab.service_image
        return next((spec for spec in self.lab.images if spec.name == name), None)

    def dockerfile(self, spec: catalog.ImageSpec | None = None) -> str:
        """The Dockerfile's path relative to the lab directory."""
        spec = spec or self.service_spec()
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
            self.label,
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
        listed = self.docker("ps", "-aq", "--filter", f"label={self.label}", timeout=30)
        containers = listed.stdout.split()
        if containers:
            self.docker("rm", "--force", "--volumes", *containers, timeout=120)
        for tag in self.tags:
            # --no-prune keeps the layers: the build cache the student's next build uses
            self.docker("image", "rm", "--no-prune", tag, timeout=60)
        if self._secret_dir:
            self.target.run(["rm", "-rf", "--", self._secret_dir], timeout=30, cwd="/")
