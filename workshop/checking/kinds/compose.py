"""What a Compose project does: no credential in an environment, resource limits,
profiles, a stack that comes up healthy.

Each kind is a settings model (its lab.yml fields, a comment each) and a function
``check_<kind>(session, settings)``; ``kinds/__init__.py`` is the table."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from workshop.checking.results import Outcome, error, failed, passed
from workshop.checking.settings import CheckSettings

if TYPE_CHECKING:
    from workshop.checking.session import Session


class ComposeSecret(CheckSettings):
    """No password in any container's environment; a secret mounted."""

    kind: Literal["compose_secret"]


class ResourceLimits(CheckSettings):
    """``service``'s containers run with a memory and a CPU limit."""

    kind: Literal["resource_limits"]
    service: str | None = None  # the Compose service


class ComposeProfile(CheckSettings):
    """``service`` starts only with ``--profile profile``, and works then."""

    kind: Literal["compose_profile"]
    service: str | None = None  # the Compose service
    profile: str | None = None  # the profile that enables it


class ComposeUp(CheckSettings):
    """``file`` (another Compose file) comes up: each of ``services`` healthy."""

    kind: Literal["compose_up"]
    file: str | None = None  # the Compose file to bring up
    services: list[str] = Field(default_factory=list)  # must run, healthy


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


def check_compose_secret(session: Session, check: ComposeSecret) -> Outcome:
    """No container's environment holds a credential (``docker inspect`` shows the
    environment to anyone who may run docker); at least one service gets a Compose secret
    (a file under /run/secrets), e.g. POSTGRES_PASSWORD_FILE=/run/secrets/db_password."""
    containers = _project_containers(session)
    if isinstance(containers, str):
        return failed(containers)
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
        return failed(
            f"{exposed[0]} is in the container's environment (docker inspect shows it): "
            "declare it under secrets: and read it from /run/secrets/<name> "
            "(POSTGRES_PASSWORD_FILE for PostgreSQL)",
            **evidence,
        )
    if not mounted:
        return failed("no service gets a secret: declare one under secrets:", **evidence)
    return passed(f"credentials arrive as files: {', '.join(mounted)}", **evidence)


def check_resource_limits(session: Session, check: ResourceLimits) -> Outcome:
    """Every container of ``service`` runs with a memory limit and a CPU limit
    (``deploy.resources.limits``): one runaway model cannot starve the others."""
    containers = _project_containers(session)
    if isinstance(containers, str):
        return failed(containers)
    mine = [c for c in containers if _service_of(c) == check.service]
    if not mine:
        return failed(f"no container of service {check.service!r} is running")
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
        return failed(
            f"{check.service} runs without a memory limit: deploy.resources.limits.memory",
            **evidence,
        )
    if any(not limit["cpus"] for limit in limits):
        return failed(
            f"{check.service} runs without a CPU limit: deploy.resources.limits.cpus",
            **evidence,
        )
    first = limits[0]
    return passed(
        f"{check.service}: {first['memory_mb']} MB and {first['cpus']} CPUs at most", **evidence
    )


def check_compose_profile(session: Session, check: ComposeProfile) -> Outcome:
    """``service`` is a tool that ``up`` leaves out (it has ``profiles: [profile]``) and
    that runs with ``--profile profile``: ``docker compose run`` it to exit 0."""
    if not session.target.exists(session.lab.compose or "compose.yaml"):
        return failed(f"{session.lab.compose} is missing in your lab directory")
    plain = session.compose("config", "--services", timeout=60)
    profiled = session.compose("--profile", str(check.profile), "config", "--services", timeout=60)
    evidence: dict[str, Any] = {
        "services": plain.stdout.split(),
        "with_profile": profiled.stdout.split(),
    }
    if not plain.ok:
        return failed(f"docker compose config failed: {plain.tail()}", **evidence)
    if check.service in evidence["services"]:
        return failed(
            f"{check.service} starts with every `up`: give it profiles: [{check.profile}]",
            **evidence,
        )
    if check.service not in evidence["with_profile"]:
        return failed(f"no service {check.service!r} with --profile {check.profile}", **evidence)
    running = session.service()  # what the tool talks to
    if running.url is None:
        return failed(str(running.problem), **evidence)
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
        return failed(
            f"docker compose --profile {check.profile} run --rm {check.service} failed: "
            f"{ran.tail()}",
            **evidence,
        )
    return passed(
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


def check_compose_up(session: Session, check: ComposeUp) -> Outcome:
    """``file`` (another Compose file: a stack to repair) comes up with ``up --wait``, and
    each of ``services`` is running and healthy (a health check removed does not count);
    the stack is taken down after."""
    if not check.file or not check.services:
        return error("lab.yml needs `file` and `services` for this check")
    if not session.target.exists(check.file):
        return failed(f"{check.file} is missing in your lab directory")
    try:
        up = session.compose("up", "-d", "--wait", "--wait-timeout", "90", file=check.file)
        listed = session.compose("ps", "-a", "--format", "json", file=check.file, timeout=60)
    finally:
        session.compose("down", "--volumes", "--remove-orphans", file=check.file, timeout=180)
    try:
        states = _compose_states(listed.stdout) if listed.ok else {}
    except json.JSONDecodeError:
        return error(f"cannot read docker compose ps: {listed.stdout[:200]}")
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
        return failed(min(problems)[1], **evidence)
    if not up.ok:
        return failed(f"docker compose up --wait failed: {up.tail()}", **evidence)
    return passed(f"{check.file}: {', '.join(check.services)} running and healthy", **evidence)
