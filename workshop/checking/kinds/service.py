"""What the running service answers over HTTP: health, predictions, refusals, generated
pictures, a port from the environment, the cache, the database behind it, replicas.

Each kind is a settings model (its lab.yml fields, a comment each) and a function
``check_<kind>(session, settings)``; ``kinds/__init__.py`` is the table."""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from workshop.checking.results import Outcome, error, failed, passed
from workshop.checking.settings import CheckSettings

if TYPE_CHECKING:
    from workshop.checking.kinds.runtime import GracefulShutdown
    from workshop.checking.session import Session


class Health(CheckSettings):
    """GET the health URL: 200 (every compared image, for a compare lab)."""

    kind: Literal["health"]


class Predict(CheckSettings):
    """POST ``file`` (a photograph) to ``path``: the expected class first, or in the top 5."""

    kind: Literal["predict"]
    file: str | None = None  # the photograph, relative to the lab directory
    path: str = "/predict"  # the endpoint the request goes to
    expect_top1_contains: str | None = None  # the first prediction's label contains this
    expect_top5_contains: list[str] = Field(default_factory=list)  # one of these in the top 5


class Reject(CheckSettings):
    """POST a file that is not an image (or ``json_file``): ``expect_status``, and still healthy."""

    kind: Literal["reject"]
    file: str | None = None  # what is sent instead of an image
    json_file: str | None = None  # a JSON request body (instead of a multipart file)
    path: str = "/predict"  # the endpoint the request goes to
    expect_status: int | None = None  # the 4xx expected (any 4xx when unset)


class Generate(CheckSettings):
    """POST ``json_file``: a PNG of its width x height; the same seed the same picture."""

    kind: Literal["generate"]
    json_file: str | None = None  # a JSON request body (instead of a multipart file)
    path: str = "/predict"  # the endpoint the request goes to


class EnvConfig(CheckSettings):
    """PORT from the environment moves the service."""

    kind: Literal["env_config"]


class CacheHit(CheckSettings):
    """The same request again: ``X-Cache: hit``."""

    kind: Literal["cache_hit"]
    file: str | None = None  # the request's file
    path: str = "/predict"  # the endpoint the request goes to


class DatabaseRow(CheckSettings):
    """Each prediction lands in PostgreSQL (table ``predictions``)."""

    kind: Literal["database_row"]
    file: str | None = None  # the request's file
    path: str = "/predict"  # the endpoint the request goes to


class Replicas(CheckSettings):
    """Scaled to ``replicas`` model servers, more than one answers."""

    kind: Literal["replicas"]
    path: str = "/predict"  # the endpoint the request goes to
    replicas: int = 3  # how many model servers the check scales to


# --- the check kinds --------------------------------------------------------------------


def _predictions(body: str) -> list[str]:
    try:
        answer = json.loads(body)
        return [str(p.get("label", "")) for p in answer.get("predictions", [])]
    except (ValueError, AttributeError, TypeError):
        return []


def check_health(session: Session, check: Health) -> Outcome:
    """GET the health URL answers 200 (each compared image's container, for Activity 2);
    where the image has a HEALTHCHECK, Docker must not call it unhealthy."""
    evidence: dict[str, Any] = {}
    names: list[str | None] = list(session.lab.compare) or [None]
    for name in names:
        running = session.service(name)
        label = name or session.lab.service_image or "service"
        if running.url is None:  # named when several images are compared
            prefix = f"{label}: " if session.lab.compare else ""
            return failed(f"{prefix}{running.problem}", **evidence)
        answer = _get_health(session, running.url)
        evidence[label] = {
            "status": answer.get("status"),
            "seconds": answer.get("seconds"),
            "body": str(answer.get("body", ""))[:300],
        }
        if running.note:
            evidence[label]["note"] = running.note
        if answer.get("status") != 200:
            return failed(
                f"{label}: GET {session.lab.health} answered "
                f"{answer.get('status') or answer.get('error')}, not 200",
                **evidence,
            )
        if running.container:
            verdict, output = _docker_health(session, running.container)
            evidence[label]["docker_health"] = verdict
            if verdict == "unhealthy" or output is not None:
                return failed(
                    f"GET {session.lab.health} answers 200 but Docker's HEALTHCHECK fails"
                    f"{': ' + output if output else ''} (is its command, e.g. curl, in the "
                    "image? does it call $PORT?)",
                    **evidence,
                )
    return passed(f"GET {session.lab.health} answered 200", **evidence)


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


def _post_file(session: Session, url: str, path: str, file: str) -> dict[str, Any]:
    if not session.target.exists(file):
        return {"error": f"{file} is not in your lab directory"}
    return session.http("POST", url + path, "--file", f"{session.target.workdir}/{file}")


def check_predict(session: Session, check: Predict) -> Outcome:
    """POST a photograph to /predict: the expected class is first (or in the top 5)."""
    running = session.service()
    if running.url is None:
        return failed(str(running.problem))
    file = check.file or "cat.jpg"
    answer = _post_file(session, running.url, check.path, file)
    if answer.get("status") != 200:
        detail = answer.get("error") or f"HTTP {answer.get('status')}: {answer.get('body', '')}"
        return failed(f"POST {check.path} with {file}: {detail[:300]}")
    labels = _predictions(answer["body"])
    evidence = {"top5": labels[:5], "seconds": answer.get("seconds")}
    if not labels:
        return failed(
            f"POST {check.path} answered 200 but no predictions[].label in: {answer['body'][:200]}",
            **evidence,
        )
    if check.expect_top1_contains and check.expect_top1_contains not in labels[0]:
        return failed(
            f"{file}: first class is {labels[0]!r}, expected one containing "
            f"{check.expect_top1_contains!r} (check the preprocessing and the labels file)",
            **evidence,
        )
    wanted = check.expect_top5_contains
    if wanted and not any(word in label for label in labels[:5] for word in wanted):
        return failed(f"{file}: none of {wanted} in the top 5 {labels[:5]}", **evidence)
    return passed(f"{file}: {labels[0]}", **evidence)


def check_reject(session: Session, check: Reject) -> Outcome:
    """POST a file that is not an image: a clear 4xx, and the service still answers."""
    running = session.service()
    if running.url is None:
        return failed(str(running.problem))
    if check.json_file:
        file, what = check.json_file, check.json_file
        if not session.target.exists(file):
            answer: dict[str, Any] = {"error": f"{file} is not in your lab directory"}
        else:
            answer = session.http("POST", running.url + check.path, *request_args(session, check))
    else:
        file = check.file or "notes.txt"
        what = f"{file} (not an image)"
        answer = _post_file(session, running.url, check.path, file)
    status = answer.get("status")
    evidence = {"status": status, "body": str(answer.get("body", ""))[:300]}
    if status != check.expect_status:
        return failed(
            f"POST {check.path} with {what} answered "
            f"{status or answer.get('error')}, expected {check.expect_status}",
            **evidence,
        )
    after = session.http("GET", running.url + (session.lab.health or "/"))
    if after.get("status") != 200:
        return failed(f"after refusing {file} the service stopped answering", **evidence)
    return passed(f"{file} refused with {status}; the service kept serving", **evidence)


def check_generate(session: Session, check: Generate) -> Outcome:
    """POST ``json_file`` (a prompt, a seed, a width and a height): a PNG of that size;
    the same request again gives the same picture (the seed decides the noise), and
    another seed another picture (the seed is used, not ignored)."""
    if not check.json_file:
        return error("lab.yml gives this check no json_file (the request)")
    running = session.service()
    if running.url is None:
        return failed(str(running.problem))
    text = session.target.read_text(check.json_file)
    if text is None:
        return failed(f"{check.json_file} is not in your lab directory")
    try:
        body = json.loads(text)
        size = [int(body["width"]), int(body["height"])]
        seed = int(body["seed"])
    except (ValueError, TypeError, KeyError) as exc:
        return error(f"{check.json_file} must be a JSON object with width, height, seed ({exc})")
    url = running.url + check.path

    def post(request: dict[str, Any]) -> dict[str, Any]:
        return session.http("POST", url, "--json", json.dumps(request), timeout=300)

    first = post(body)
    evidence: dict[str, Any] = {"status": first.get("status"), "seconds": first.get("seconds")}
    if first.get("status") != 200:
        detail = first.get("error") or f"HTTP {first.get('status')}: {first.get('body', '')}"
        return failed(f"POST {check.path} with {check.json_file}: {detail[:300]}", **evidence)
    kind = first.get("headers", {}).get("content-type", "")
    evidence.update(content_type=kind, png=first.get("png"), bytes=first.get("bytes"))
    if "png" not in first:
        return failed(
            f"POST {check.path} answered 200 with {kind or 'no content type'}, not a PNG "
            "picture: return the image's bytes as image/png",
            **evidence,
        )
    if first["png"] != size:
        width, height = first["png"]
        return failed(
            f"asked for {size[0]}x{size[1]}, got a {width}x{height} PNG: pass width and "
            "height to the pipeline",
            **evidence,
        )
    again = post(body)
    other = post({**body, "seed": seed + 1})
    evidence["warm_seconds"] = again.get("seconds")
    if again.get("sha256") != first["sha256"]:
        return failed(
            f"the same request (seed {seed}) gave a different picture the second time: make "
            "the noise from the seed (a torch.Generator seeded with it)",
            **evidence,
        )
    if other.get("status") == 200 and other.get("sha256") == first["sha256"]:
        return failed(
            f"seeds {seed} and {seed + 1} gave the same picture: the seed is ignored", **evidence
        )
    return passed(
        f"a {size[0]}x{size[1]} PNG in {first.get('seconds')}s (again {again.get('seconds')}s,"
        " the same picture); another seed, another picture",
        **evidence,
    )


def request_args(session: Session, check: Reject | GracefulShutdown) -> list[str] | str:
    """The probe's arguments for the check's request body (``json_file``, else ``file``)."""
    if check.json_file and (session.target.exists(check.json_file) or not session.env.grading):
        return ["--json-file", f"{session.target.workdir}/{check.json_file}"]
    if check.file:
        return ["--file", f"{session.target.workdir}/{check.file}"]
    if session.env.grading:  # any body: the request only has to be in flight
        return ["--json", "{}"]
    return "lab.yml gives this check no request body (file or json_file)"


def check_env_config(session: Session, check: EnvConfig) -> Outcome:
    """Started with ``PORT=<another port>``, the service answers there."""
    port = 9000 + secrets.randbelow(900)
    running = session.start(None, suffix="env", env={"PORT": str(port)}, port=port)
    if running.url is None:
        return failed(
            f"started with PORT={port}: {running.problem} (read the port from $PORT)",
            port=port,
        )
    return passed(f"started with PORT={port}, it answered on {port}", port=port)


def _cache_header(answer: dict[str, Any]) -> str:
    return str(answer.get("headers", {}).get("x-cache", "")).lower()


def check_cache_hit(session: Session, check: CacheHit) -> Outcome:
    """The same image twice: the second answer comes from the cache (``X-Cache: hit``)."""
    running = session.service()
    if running.url is None:
        return failed(str(running.problem))
    file = check.file or "cat.jpg"
    answers = [_post_file(session, running.url, check.path, file) for _ in range(2)]
    evidence = {
        "x_cache": [_cache_header(a) for a in answers],
        "status": [a.get("status") for a in answers],
    }
    if any(a.get("status") != 200 for a in answers):
        return failed(f"POST {check.path} with {file} did not answer 200", **evidence)
    if _cache_header(answers[1]) != "hit":
        return failed(
            f"the second request for the same image answered X-Cache: "
            f"{_cache_header(answers[1]) or '(none)'}: is Redis reachable as 'redis'?",
            **evidence,
        )
    return passed("the same image again was answered from Redis", **evidence)


def check_database_row(session: Session, check: DatabaseRow) -> Outcome:
    """Each prediction is a row in PostgreSQL's ``predictions`` table."""
    running = session.service()
    if running.url is None:
        return failed(str(running.problem))
    before = _count_rows(session)
    answer = _post_file(session, running.url, check.path, check.file or "cat.jpg")
    after = _count_rows(session)
    evidence = {"rows_before": before, "rows_after": after, "status": answer.get("status")}
    if isinstance(after, str):
        return failed(f"cannot count the rows: {after}", **evidence)
    if answer.get("status") != 200 or not isinstance(before, int) or after <= before:
        return failed("a prediction added no row to the predictions table", **evidence)
    return passed(f"the prediction is row {after} of the predictions table", **evidence)


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


def check_replicas(session: Session, check: Replicas) -> Outcome:
    """Scaled to ``replicas`` model servers, requests are answered by more than one."""
    running = session.service()
    if running.url is None:
        return failed(str(running.problem))
    scaled = session.compose(
        "up", "--wait", "--no-build", "--scale", f"model={check.replicas}", timeout=600
    )
    if not scaled.ok:
        return failed(f"--scale model={check.replicas} failed: {scaled.tail()}")
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
        return failed(
            f"{4 * check.replicas} requests reached {len(instances)} replica(s): give the "
            "model service no container_name and no published port, so it can scale",
            **evidence,
        )
    return passed(f"requests reached {len(instances)} replicas", **evidence)
