"""The practical assessment's grader: one scorecard per submission.

A submission is a directory (a student's ``~/labs/practical/`` on their VM, a local
checkout) or a git URL, cloned here under a timeout. The seven requirements are the
practical's ``lab.yml`` checks, run by the same code as ``workshop check``
(``workshop/checking``) in its grading mode: the service is found on ``$PORT`` (or an EXPOSEd
port, which then costs requirement 6), any framework and any model. Warnings beyond the
seven come from ``audit.py``. Untrusted code builds and runs with resource limits, no host
mounts, no privileges, every step under a timeout, and everything it made is removed
after; a submission that cannot be built or never answers gets a scorecard that says so.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import re
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from workshop import checking
from workshop.checking.target import LocalTarget, Target, TargetUnreachable, buildkit_available
from workshop.grading import audit
from workshop.labs import bases, catalog

PRACTICAL = "practical"
GRADED, NOT_GRADED = "graded", "not graded"
CLONE_TIMEOUT = 120


@dataclass(frozen=True)
class Limits:
    """What an untrusted submission may use while it is graded."""

    memory: str = "2g"
    cpus: float = 1.5
    pids: int = 512
    build_timeout: float = 600
    health_timeout: float = 60
    clone_timeout: float = CLONE_TIMEOUT

    def run_options(self) -> tuple[str, ...]:
        return (
            "--memory",
            self.memory,
            "--memory-swap",
            self.memory,
            "--cpus",
            str(self.cpus),
            "--pids-limit",
            str(self.pids),
            "--security-opt",
            "no-new-privileges",
        )

    def build_options(self, builder: str) -> tuple[str, ...]:
        # The classic builder runs each step in a container with these limits; BuildKit
        # takes none on `docker build` (its steps are bounded by the build timeout).
        if builder != "classic":
            return ()
        return ("--memory", self.memory, "--memory-swap", self.memory)


@dataclass
class Scorecard:
    """One submission: each requirement's verdict and evidence, and the warnings."""

    source: str
    status: str = NOT_GRADED
    message: str = ""
    requirements: list[checking.CheckResult] = field(default_factory=list)
    warnings: list[audit.Finding] = field(default_factory=list)
    score: int = 0
    total: int = 0
    size_limit: str = ""
    graded_at: str = ""
    seconds: float = 0.0
    student: str | None = None
    host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Scorecard:
        raw = dict(raw)
        requirements = [checking.CheckResult(**item) for item in raw.pop("requirements", [])]
        warnings = [audit.Finding(**item) for item in raw.pop("warnings", [])]
        return cls(**raw, requirements=requirements, warnings=warnings)


def requirements() -> list[catalog.CheckEntry]:
    """The seven requirements, in the assignment's order."""
    return catalog.load(PRACTICAL).checks


def environment(base_images: dict[str, str], limits: Limits, builder: str) -> checking.Environment:
    """How a submission is built and run: the classroom's bases, grading mode, limits."""
    return checking.Environment(
        bases=base_images,
        published={},
        health_timeout=limits.health_timeout,
        grading=True,
        run_options=limits.run_options(),
        build_options=limits.build_options(builder),
        build_timeout=limits.build_timeout,
    )


def _headline(card: Scorecard, session: checking.Session) -> str:
    """The one problem that explains the most failures, else the score."""
    built = session.built.get("service")
    if built is not None and built.tag is None:
        return str(built.problem)
    if session.unready:
        return session.unready
    return f"{card.score} of {card.total} requirements met"


def _unique(findings: list[audit.Finding]) -> list[audit.Finding]:
    """One warning per thing: ENV API_TOKEN=... is seen in the Dockerfile and the image."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for finding in findings:
        key = (finding.code, str(finding.evidence.get("name") or finding.message))
        if key not in seen:
            seen.add(key)
            kept.append(finding)
    return kept


def shown(source: str) -> str:
    """A source as it may be shown and kept: a URL's password or token taken out."""
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", source)


def _fit_cpus(target: Target, env: checking.Environment) -> checking.Environment:
    """``--cpus`` no higher than the target has (docker run refuses more)."""
    options = list(env.run_options)
    if "--cpus" not in options:
        return env
    counted = target.run(["nproc"], timeout=30)
    try:
        available = int(counted.stdout.strip())
    except ValueError:
        return env
    index = options.index("--cpus") + 1
    options[index] = str(min(float(options[index]), available))
    return dataclasses.replace(env, run_options=tuple(options))


def grade(target: Target, env: checking.Environment, source: str) -> Scorecard:
    """Grade the submission in ``target``'s directory; everything it made is removed."""
    started = time.monotonic()
    lab = catalog.load(PRACTICAL)
    source = shown(source)
    card = Scorecard(source, graded_at=datetime.now(UTC).isoformat(timespec="seconds"))
    try:
        env = _fit_cpus(target, env)
    except TargetUnreachable as exc:
        card.message = str(exc)
        return card
    session = checking.Session(lab, target, env)
    try:
        if not target.exists("."):
            card.message = f"{target.workdir} does not exist"
            return card
        card.requirements = [checking.run_check(session, check) for check in session.checks]
        card.total = len(card.requirements)
        card.score = sum(1 for result in card.requirements if result.passed)
        size = next((r for r in card.requirements if r.kind == "size"), None)
        if size and "limit_applied" in size.evidence:
            card.size_limit = (
                f"{size.evidence['limit_mb']:.0f} MB ({size.evidence['limit_applied']})"
            )
        text = target.read_text(session.dockerfile())
        if text is None:
            card.message = (
                "no Dockerfile at the top of the submission: the assignment asks for one there"
            )
        else:
            context_ignore = target.exists(".dockerignore")
            card.warnings += audit.static_findings(text, has_dockerignore=context_ignore)
            linted = audit.hadolint(text)
            if isinstance(linted, str):
                card.warnings.append(audit.Finding("hadolint", linted))
            else:
                card.warnings += linted
            built = session.built.get("service")
            if built is not None and built.tag:
                card.warnings += audit.image_findings(session, built.tag)
            card.message = _headline(card, session)
        card.warnings = _unique(card.warnings)
        card.status = GRADED
    except TargetUnreachable as exc:
        card.status, card.message = NOT_GRADED, str(exc)
    finally:
        with contextlib.suppress(TargetUnreachable):
            session.cleanup()
        card.seconds = round(time.monotonic() - started, 1)
    return card


# --- submissions on this machine: directories and git URLs ------------------------------


def _is_git_url(source: str) -> bool:
    if "://" in source or source.startswith("git@"):
        return True
    path = Path(source)
    return path.is_dir() and (path / "HEAD").is_file() and (path / "objects").is_dir()


def _without_credentials(url: str) -> tuple[str, str | None]:
    """An https URL without its ``user:token@`` and the Authorization header that carries
    them instead, so the token never stands on a command line."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.username is None:
        return url, None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Authorization: Basic {token}"


def fetch(source: str, scratch: Path, timeout: float = CLONE_TIMEOUT) -> Path | str:
    """The submission's directory: ``source`` itself, or a clone of it in ``scratch``;
    else why not. A clone never waits for a password or a host key."""
    if not _is_git_url(source):
        path = Path(source)
        if path.is_dir():
            return path.resolve()
        return f"{source} is neither a directory nor a git URL"
    destination = scratch / "submission"
    environment = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=15",
    }
    url, header = _without_credentials(source)
    if header:  # an environment is the process's own; a command line is everyone's (ps)
        environment.update(
            GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader", GIT_CONFIG_VALUE_0=header
        )
    try:
        cloned = subprocess.run(
            ["git", "clone", "--depth", "1", "--quiet", "--", url, str(destination)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=environment,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (
            f"git clone {shown(source)} took over {timeout:.0f}s: is the URL reachable from here?"
        )
    except OSError as exc:
        return f"git could not run: {exc}"
    if cloned.returncode != 0:
        lines = [line for line in cloned.stderr.strip().splitlines() if line.strip()]
        reason = shown(lines[-1]) if lines else f"exit {cloned.returncode}"
        return f"git clone {shown(source)} failed: {reason}"
    return destination


def safely(source: str, grading: Callable[[], Scorecard]) -> Scorecard:
    """A grading that fails in a way nobody foresaw is that submission's scorecard: the
    others are still graded."""
    try:
        return grading()
    except Exception as exc:
        card = Scorecard(
            shown(source), NOT_GRADED, f"the grader failed: {type(exc).__name__}: {exc}"
        )
        card.graded_at = datetime.now(UTC).isoformat(timespec="seconds")
        return card


def grade_here(source: str, base_images: dict[str, str], limits: Limits) -> Scorecard:
    """One directory or git URL, graded on this machine's engine."""
    with tempfile.TemporaryDirectory(prefix="workshop-grade-") as scratch:
        where = fetch(source, Path(scratch), limits.clone_timeout)
        if isinstance(where, str):
            card = Scorecard(shown(source), NOT_GRADED, where)
            card.graded_at = datetime.now(UTC).isoformat(timespec="seconds")
            return card
        # BuildKit as on the VMs, so a submission using Lesson 03's RUN --mount builds.
        target = LocalTarget(where, builder="buildkit" if buildkit_available() else "classic")
        return grade(target, environment(base_images, limits, target.builder), source)


def local_bases(
    client: docker.DockerClient, *, trust_extra_ca: bool | None = None
) -> dict[str, str]:
    """The stand-ins on this engine: python always (built if missing), the others where
    they are already built; with the extra CA trusted when asked for."""
    bundle = bases.trusted_bundle(trust_extra_ca)
    found = {}
    for name, base in bases.BASES.items():
        if name != "python":
            try:
                client.images.get(base.local)
            except docker.errors.ImageNotFound:
                continue
        result = bases.build_base(client, base)
        if bundle is not None:
            result = bases.trusting(client, result, bundle)
        found[name] = result.local
    return found


def grade_sources(
    client: docker.DockerClient,
    sources: list[str],
    *,
    jobs: int = 2,
    limits: Limits | None = None,
    trust_extra_ca: bool | None = None,
    on_card: Callable[[Scorecard], None] | None = None,
) -> list[Scorecard]:
    """Grade each source on this machine's engine, ``jobs`` at a time, in order."""
    limits = limits or Limits()
    base_images = local_bases(client, trust_extra_ca=trust_extra_ca)

    def one(source: str) -> Scorecard:
        card = safely(source, lambda: grade_here(source, base_images, limits))
        if on_card:
            on_card(card)
        return card

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(sources)))) as pool:
        return list(pool.map(one, sources))
