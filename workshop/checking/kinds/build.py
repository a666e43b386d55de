"""How the image builds: layers reused after a code change, a build secret kept out of
the image, a .dockerignore that keeps files out, pip's cache in a BuildKit cache mount.

Each kind is a settings model (its lab.yml fields, a comment each) and a function
``check_<kind>(session, settings)``; ``kinds/__init__.py`` is the table."""

from __future__ import annotations

import json
import re
import shlex
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from workshop.checking.dockerfile import instructions
from workshop.checking.results import Outcome, error, failed, passed
from workshop.checking.settings import CheckSettings

if TYPE_CHECKING:
    from workshop.checking.session import Session


class LayerReuse(CheckSettings):
    """A change to ``file`` rebuilds no layer at or below the dependencies."""

    kind: Literal["layer_reuse"]
    file: str | None = None  # the code file the check changes


class BuildSecret(CheckSettings):
    """The build needs ``secret_id``; its value is in no layer or history."""

    kind: Literal["build_secret"]
    secret_id: str = "index_token"  # noqa: S105 (a name) the id of `docker build --secret id=...`


class Dockerignore(CheckSettings):
    """``excludes`` never reach the build context, ``includes`` do."""

    kind: Literal["dockerignore"]
    excludes: list[str] = Field(default_factory=list)  # planted, must stay out
    includes: list[str] = Field(default_factory=list)  # must reach the build


class CacheMount(CheckSettings):
    """Every pip install RUN keeps pip's cache in a BuildKit cache mount."""

    kind: Literal["cache_mount"]


# Steps that install dependencies (what a code-only change must not re-run).
DEPENDENCY_STEP = re.compile(
    r"pip |pip3 |requirements|/opt/venv|venv|poetry|conda |uv (?:pip|sync)|npm (?:ci|install)"
)


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


def check_layer_reuse(session: Session, check: LayerReuse) -> Outcome:
    """After a change to one code file, the rebuild takes every dependency step from cache."""
    spec = session.service_spec()
    if spec is None or not check.file:
        return error("lab.yml needs an image and `file` (the code file to change)")
    first = session.build(spec.name)
    if first.tag is None:
        return failed(str(first.problem))
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
            return failed(f"cannot change {check.file}: {copied.tail()}")
        again = session.build(spec.name, context=copy, plain=True)
        if again.tag is None:
            return failed(f"after a change to {check.file}: {again.problem}")
        marker = f"LABEL {session.label.partition('=')[0]}="  # the check's own --label step
        steps = [s for s in build_steps(again.output) if not s[0].startswith(marker)]
    dependencies = [
        (step, cached)
        for step, cached in steps
        if step.split(" ", 1)[0].upper() in ("RUN", "COPY", "ADD") and DEPENDENCY_STEP.search(step)
    ]
    rebuilt = [step[:80] for step, cached in steps if not cached]
    evidence = {"steps": len(steps), "rebuilt": rebuilt, "dependency_steps": len(dependencies)}
    if not steps:
        return error("could not read the build's steps from its output")
    if not dependencies:
        return failed("no step installs dependencies (pip install -r requirements.txt)", **evidence)
    missed = [step for step, cached in dependencies if not cached]
    if missed:
        return failed(
            f"a change to {check.file} re-ran {missed[0][:80]!r}: copy requirements.txt and "
            "install the dependencies before copying the code",
            **evidence,
        )
    if not rebuilt:
        return failed(f"a change to {check.file} rebuilt nothing: is the code in the image?")
    return passed(
        f"a change to {check.file} rebuilt {len(rebuilt)} of {len(steps)} steps; "
        "every dependency step came from the cache",
        **evidence,
    )


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


def check_build_secret(session: Session, check: BuildSecret) -> Outcome:
    """The build uses the secret ``secret_id`` (``RUN --mount=type=secret``): it builds with
    it, fails without it, and its value is in no layer, no history line and no config."""
    name = session.lab.service_image
    if name is None:
        return error("lab.yml names no image for build_secret")
    if session.target.builder != "buildkit":
        return error("build secrets need BuildKit (the buildx plugin): this engine has none")
    # From no cache: a cached step that copied a secret holds an earlier build's value.
    built = session.build(name, fresh=True)
    if built.tag is None:
        return failed(f"{built.problem} (built with --secret id={check.secret_id})")
    value = session.secret_value
    history = session.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", built.tag)
    config = session.docker("image", "inspect", built.tag, timeout=30)
    with session.scratch() as scratch:
        saved = session.docker("save", "-o", f"{scratch}/image.tar", built.tag, timeout=300)
        scan = session.target.run(
            ["python3", "-I", "-c", _SCAN_SAVED, f"{scratch}/image.tar", value],
            timeout=300,
            cwd="/",
        )
    if not (history.ok and config.ok and saved.ok and scan.ok):
        broken = next(r for r in (history, config, saved, scan) if not r.ok)
        return error(f"could not read the image: {broken.tail()}")
    layers = json.loads(scan.stdout or "[]")
    evidence: dict[str, Any] = {"in_history": value in history.stdout, "in_layers": layers[:5]}
    if value in history.stdout:
        return failed(
            "the secret's value is in the image history (a build ARG or ENV is recorded "
            f"there): read it with RUN --mount=type=secret,id={check.secret_id} instead",
            **evidence,
        )
    if value in config.stdout:
        return failed("the secret's value is in the image config (ENV or LABEL)", **evidence)
    if layers:
        return failed(
            f"the secret's value is in a layer ({layers[0]}): a COPY (or a file written by "
            "a RUN) stays in its layer even when a later step deletes it; mount it with "
            f"RUN --mount=type=secret,id={check.secret_id}",
            **evidence,
        )
    without = session.build(name, with_secrets=False)
    evidence["builds_without_secret"] = without.tag is not None
    if without.tag is not None:
        return failed(
            f"the image builds without the secret {check.secret_id}, so no step uses it: "
            f"read /run/secrets/{check.secret_id} in the RUN that needs it "
            "(required=true makes a missing secret an error)",
            **evidence,
        )
    return passed(
        f"the build needs {check.secret_id} and its value is in no layer or history",
        **evidence,
    )


def check_dockerignore(session: Session, check: Dockerignore) -> Outcome:
    """Files planted at ``excludes`` in a copy of the build context never reach the build;
    the ``includes`` do. Judged by building ``COPY . /ctx`` with the student's
    .dockerignore and listing what arrived, whatever their Dockerfile copies."""
    spec = next((s for s in session.lab.images if not s.from_lab), None)
    if spec is None:
        return error("lab.yml names no image for dockerignore")
    context = session.lab.student_context(spec)
    if not session.target.exists(f"{context}/.dockerignore"):
        return failed(".dockerignore is missing: create it next to the Dockerfile")
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
            return error(f"could not copy the build context: {copied.tail()}")
        probe = f"FROM {session.env.bases['python']}\nCOPY . /ctx\n"
        built = session.target.run(
            [
                "docker",
                "build",
                "-q",
                "-t",
                tag,
                "--label",
                session.label,
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
            return failed(f"a build of this context failed: {built.tail()}")
        listing = session.docker(
            "run",
            "--rm",
            "--label",
            session.label,
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
        return failed(
            f".dockerignore lets {', '.join(leaked[:3])} into the build context: add a "
            f"pattern for {leaked[0].split('/')[0]}",
            **evidence,
        )
    if missing:
        return failed(
            f".dockerignore keeps out {', '.join(missing[:3])}, which the image needs",
            **evidence,
        )
    return passed(
        f"the build context is {evidence['context_kb']} kB of the directory's "
        f"{evidence['directory_kb']} kB; nothing planted got in",
        **evidence,
    )


def _first_int(text: str) -> int | None:
    match = re.search(r"\d+", text)
    return int(match.group()) if match else None


_PIP_INSTALL = re.compile(r"\b(?:pip3?|python3? -m pip|uv pip)\s+install\b")


def check_cache_mount(session: Session, check: CacheMount) -> Outcome:
    """Every RUN that installs with pip keeps pip's download cache in a BuildKit cache
    mount (``RUN --mount=type=cache,target=/root/.cache/pip``): rebuilds after a
    requirements change download only what changed, and the cache is in no layer."""
    text = session.target.read_text(session.dockerfile())
    if text is None:
        return failed(f"{session.dockerfile()} is missing")
    runs = [i["value"] for i in instructions(text) if i["instruction"] == "RUN"]
    installs = [run for run in runs if _PIP_INSTALL.search(run)]
    evidence: dict[str, Any] = {"pip_installs": [run[:120] for run in installs]}
    if not installs:
        return failed("no RUN installs anything with pip", **evidence)
    for run in installs:
        mounts = re.findall(r"--mount=(\S+)", run)
        cached = [m for m in mounts if "type=cache" in m]
        if not cached:
            return failed(
                f"RUN {run[:60]}... has no cache mount: add --mount=type=cache,"
                "target=/root/.cache/pip",
                **evidence,
            )
        if "--no-cache-dir" in run or "PIP_NO_CACHE_DIR" in run:
            return failed(
                "--no-cache-dir turns pip's cache off, so the cache mount stays empty: "
                "drop it (the mount keeps the cache out of the image anyway)",
                **evidence,
            )
    return passed(f"{len(installs)} pip install(s) use a BuildKit cache mount", **evidence)
