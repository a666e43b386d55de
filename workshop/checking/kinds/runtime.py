"""How the container runs: as a non-root user, an init as PID 1, a graceful stop.

Each kind is a settings model (its lab.yml fields, a comment each) and a function
``check_<kind>(session, settings)``; ``kinds/__init__.py`` is the table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from workshop.checking.dockerfile import dockerfile_stages
from workshop.checking.kinds.service import request_args
from workshop.checking.results import Outcome, error, failed, passed
from workshop.checking.settings import CheckSettings

# How long ``docker stop`` waits for SIGTERM to end the service before SIGKILL.
STOP_TIMEOUT = 15

if TYPE_CHECKING:
    from workshop.checking.session import Session


class NonRoot(CheckSettings):
    """Every process of the running container has a non-zero uid."""

    kind: Literal["non_root"]


class GracefulShutdown(CheckSettings):
    """``docker stop`` with a request in flight: answered, exit 0."""

    kind: Literal["graceful_shutdown"]
    file: str | None = None  # the request's file
    json_file: str | None = None  # a JSON request body (instead of a multipart file)
    path: str = "/predict"  # the endpoint the request goes to


class InitProcess(CheckSettings):
    """PID 1 of the running service is an init (tini, docker-init)."""

    kind: Literal["init_process"]


def check_non_root(session: Session, check: NonRoot) -> Outcome:
    """Every process of the running container has a non-zero uid."""
    running = session.service()
    if running.url is None or running.container is None:
        return failed(str(running.problem or "the service is not a single container"))
    top = session.docker("top", running.container, "-eo", "uid,pid,comm", timeout=30)
    if not top.ok:
        return error(f"docker top failed: {top.tail()}")
    rows = [line.split(None, 2) for line in top.stdout.strip().splitlines()[1:]]
    uids = sorted({row[0] for row in rows if row})
    evidence: dict[str, Any] = {"uids": uids, "processes": [row[-1] for row in rows][:5]}
    stages = dockerfile_stages(session.target.read_text(session.dockerfile()) or "")
    evidence["dockerfile_user"] = stages[-1].get("user") if stages else None
    if not uids:
        return error("docker top listed no process", **evidence)
    if "0" in uids or "root" in uids:
        return failed(
            "the service runs as root (uid 0): create a user and switch to it (USER 10001)",
            **evidence,
        )
    return passed(f"runs as uid {', '.join(uids)}", **evidence)


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


def check_graceful_shutdown(session: Session, check: GracefulShutdown) -> Outcome:
    """``docker stop`` with a request in flight: it is answered and the container exits 0
    before the stop timeout. The request is held open by sending its body slowly, so no
    hook in the service is needed. A shell-form command fails without a run."""
    request = request_args(session, check)
    if isinstance(request, str):
        return error(request)
    for name in (check.file, check.json_file):
        if name and not session.target.exists(name) and not session.env.grading:
            return failed(f"{name} is not in your lab directory")
    shell = _shell_form(session)
    if shell:
        return failed(shell, form="shell")
    running = session.start(None, suffix="graceful")
    if running.url is None or running.container is None:
        return failed(str(running.problem))
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
        return error(str(seen["error"]))
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
        return failed(
            f"docker stop waited {stopped:.0f}s and killed it (exit {code}): {why}", **evidence
        )
    if seen.get("status") is None:
        return failed(
            f"the request in flight was lost on SIGTERM ({seen.get('lost')}): let the server "
            "finish in-flight requests before it exits (e.g. uvicorn's timeout_graceful_shutdown)",
            **evidence,
        )
    if seen["status"] >= 500 and "--json" not in request:
        return failed(f"the request in flight was answered {seen['status']}", **evidence)
    if code != 0:
        return failed(
            f"after SIGTERM the container exited with code {code}, not 0"
            f"{' (143: the signal killed it; handle SIGTERM)' if code == 143 else ''}",
            **evidence,
        )
    return passed(
        f"the request in flight was answered ({seen['status']}) and the container exited 0 "
        f"{stopped:.1f}s after docker stop",
        **evidence,
    )


INITS = ("tini", "docker-init", "dumb-init", "tini-static", "catatonit")


def check_init_process(session: Session, check: InitProcess) -> Outcome:
    """PID 1 of the running service is an init that reaps zombies and forwards signals
    (tini, dumb-init), started by the image itself: the check runs it without --init."""
    running = session.start(None, suffix="init")
    if running.url is None or running.container is None:
        return failed(str(running.problem))
    pid1 = _pid1(session, running.container)
    evidence = {"pid1": pid1}
    if pid1 is None:
        return error("docker top listed no process", **evidence)
    if pid1.split("/")[-1] not in INITS:
        return failed(
            f"PID 1 is {pid1}, which reaps no zombie processes: install tini and start "
            'through it (ENTRYPOINT ["tini", "--"]); `docker run --init` does the same '
            "for one run only",
            **evidence,
        )
    return passed(f"PID 1 is {pid1}", **evidence)
