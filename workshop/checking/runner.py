"""Running a lab's checks: ``run_lab`` builds, runs and checks one lab's work on a target
and cleans up whatever happens; ``run_check`` runs one check through the kinds table.
The environments say what images are called where (this machine, a student's VM)."""

from __future__ import annotations

import contextlib
import re
import time
from datetime import UTC, datetime
from typing import Any

from workshop.checking.kinds import KINDS, parse
from workshop.checking.kinds.files import Script
from workshop.checking.results import (
    ERROR,
    FAILED,
    NOT_DELIVERED,
    NOT_STARTED,
    PASSED,
    UNREACHABLE,
    CheckResult,
    LabRun,
)
from workshop.checking.session import Environment, Session
from workshop.checking.settings import CheckSettings
from workshop.checking.target import Target, TargetUnreachable
from workshop.labs import bases, catalog


def run_check(session: Session, check: CheckSettings) -> CheckResult:
    """One check; an unexpected failure of the check itself is an ``error``, not a crash."""
    started = time.monotonic()
    try:
        _, function = KINDS[check.kind]
        status, message, evidence = function(session, check)
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
        for c in session.checks
        if isinstance(c, Script) and c.file and c.file not in session.lab.handout.files
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
        for check in session.checks:
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
    needed = {spec.base for spec in lab.images if spec.base}
    if lab.compose:
        needed |= set(bases.BASES) - {"nginx"}
    for name in sorted(needed):
        bases.build_base(client, bases.BASES[name])
    published = {}
    wanted = {*lab.uses, *(spec.from_lab for spec in lab.images if spec.from_lab)}
    wanted |= {
        ref
        for check in parse(lab)
        if isinstance(check, Script)
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
