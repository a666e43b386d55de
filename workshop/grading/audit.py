"""What a Dockerfile and its image get wrong beyond a lab's checks: the grader's warnings.

Static evidence comes from a Dockerfile parser (``dockerfile-parse``) and hadolint (run on
this machine, as actionlint is for the CI lab); dynamic evidence from the engine where the
image was built: its config (``docker image inspect``), its history, and every layer read
as ``docker save`` streams it (``probe.py layers``: credentials in any layer, apt lists
and pip caches left in the final filesystem). Secrets are named by where they are, never
by their value.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop.checking.dockerfile import dockerfile_stages, instructions, stage_index

if TYPE_CHECKING:
    from workshop.checking.session import Session

SECRET_WORDS = {"password", "passwd", "secret", "token", "credential", "credentials", "apikey"}
SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")}


def secret_name(name: str) -> bool:
    """Whether a variable's name says it holds a secret (HF_TOKEN, DB_PASSWORD,
    AWS_SECRET_ACCESS_KEY; not TOKENIZERS_PARALLELISM or AUTHOR)."""
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    return bool(SECRET_WORDS & set(words)) or bool(SECRET_PAIRS & set(itertools.pairwise(words)))


HADOLINT = Path(sys.executable).with_name("hadolint")
HADOLINT_LEVELS = ("error", "warning")


@dataclass
class Finding:
    """One warning: a short code, what is wrong and what to do, and where it was seen."""

    code: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


def _pairs(value: str) -> list[tuple[str, str]]:
    """``KEY=value`` pairs of an ENV or ARG line (and the old ``ENV KEY value`` form)."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(key, default) for key, _, default in (word.partition("=") for word in words)]


def static_findings(text: str, *, has_dockerignore: bool) -> list[Finding]:
    """What the Dockerfile itself shows: secrets in ENV/ARG, unpinned bases, ADD of a URL,
    and no .dockerignore next to it."""
    found: list[Finding] = []
    for instruction in instructions(text):
        kind, value, line = (
            instruction["instruction"],
            instruction["value"],
            instruction["startline"],
        )
        if kind in ("ENV", "ARG"):
            for key, default in _pairs(value):
                if secret_name(key) and default and not default.startswith("$"):
                    where = (
                        "the image's config, for anyone who pulls it"
                        if kind == "ENV"
                        else "the image's history wherever a RUN uses it"
                    )
                    found.append(
                        Finding(
                            f"secret-{kind.lower()}",
                            f"line {line + 1}: {kind} {key} holds a value, which ends up in "
                            f"{where}: pass it at run time (-e, --env-file, Compose secrets) "
                            "or as a build secret (RUN --mount=type=secret)",
                            {"line": line + 1, "name": key},
                        )
                    )
        if kind == "ADD" and re.search(r"(^|\s)https?://", value):
            found.append(
                Finding(
                    "add-url",
                    f"line {line + 1}: ADD of a URL downloads without a checksum and keeps the "
                    "file in a layer: RUN curl ... && verify && use it in one step, or "
                    "ADD --checksum=sha256:...",
                    {"line": line + 1},
                )
            )
    stages = dockerfile_stages(text)
    for index, stage in enumerate(stages):
        base = stage["base"]
        if not base or base.lower() == "scratch" or stage_index(stages, base, index) is not None:
            continue
        name = base.rsplit("/", 1)[-1]
        if "@" in name:
            continue
        if ":" not in name:
            problem = f"FROM {base} has no tag: it means :latest"
        elif name.endswith(":latest"):
            problem = f"FROM {base} uses :latest"
        else:
            continue
        found.append(
            Finding(
                "unpinned-base",
                f"{problem}, which changes under you; pin a version (python:3.11-slim) or a digest",
                {"base": base},
            )
        )
    if not has_dockerignore:
        found.append(
            Finding(
                "no-dockerignore",
                "no .dockerignore: the whole directory (.git, venvs, data, secrets) is sent "
                "to the build and COPY . can put it in the image",
            )
        )
    return found


def hadolint(text: str) -> list[Finding] | str:
    """hadolint's errors and warnings for the Dockerfile, or why it could not run."""
    try:
        linted = subprocess.run(
            [str(HADOLINT), "--no-fail", "--format", "json", "-"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        results = json.loads(linted.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return f"hadolint could not run here: {exc} (make setup installs it)"
    return [
        Finding(
            f"hadolint {item['code']}",
            f"line {item['line']}: {item['message']}",
            {"line": item["line"], "level": item["level"]},
        )
        for item in results
        if item.get("level") in HADOLINT_LEVELS
    ]


def image_findings(session: Session, tag: str) -> list[Finding]:
    """What the built image holds: secrets in its config, history or layers; apt lists
    and pip caches left behind."""
    found: list[Finding] = []
    inspected = session.docker("image", "inspect", "--format", "{{json .Config.Env}}", tag)
    try:
        variables = json.loads(inspected.stdout or "null") or []
    except ValueError:
        variables = []
    for variable in variables:
        key, _, value = str(variable).partition("=")
        if secret_name(key) and value:
            found.append(
                Finding(
                    "secret-env",
                    f"the image's environment sets {key}: anyone who pulls the image reads "
                    "it; pass it at run time",
                    {"name": key},
                )
            )
    history = session.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", tag)
    named = {finding.evidence["name"] for finding in found}
    leaked = sorted(
        {
            key
            for line in history.stdout.splitlines()
            if line.startswith("|") or line.startswith("RUN |")  # a RUN with build args
            for key, value in re.findall(r"(?:^|\s)(\w+)=(\S+)", line.split("/bin/sh -c")[0])
            if secret_name(key) and value and key not in named
        }
    )
    for key in leaked:
        found.append(
            Finding(
                "secret-history",
                f"build argument {key} is recorded in the image's history (docker history "
                "shows it): use RUN --mount=type=secret instead",
                {"name": key},
            )
        )
    scanned = session.target.probe("layers", tag, timeout=900)
    if "error" in scanned:
        found.append(Finding("layers-unread", f"the layers could not be read: {scanned['error']}"))
        return found
    for hit in scanned.get("secrets", []):
        found.append(
            Finding(
                "secret-layer",
                f"layer {hit['layer']} holds {hit['kind']} at /{hit['path']}: deleting it in a "
                "later step does not remove it from the image; keep it out of the build "
                "context (.dockerignore) or use a build secret",
                hit,
            )
        )
    apt = scanned.get("apt_lists", {})
    if apt.get("files"):
        found.append(
            Finding(
                "apt-lists",
                f"apt's package lists are left in the image ({apt['files']} files, "
                f"{apt['bytes'] / 1e6:.0f} MB): end the RUN that installs with "
                "rm -rf /var/lib/apt/lists/*",
                apt,
            )
        )
    pip = scanned.get("pip_cache", {})
    if pip.get("files"):
        found.append(
            Finding(
                "pip-cache",
                f"pip's cache is left in the image ({pip['files']} files, "
                f"{pip['bytes'] / 1e6:.0f} MB): pip install --no-cache-dir",
                pip,
            )
        )
    return found
