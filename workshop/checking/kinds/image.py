"""What the image is: its size (and the saving against another), its stages, its pins.

Each kind is a settings model (its lab.yml fields, a comment each) and a function
``check_<kind>(session, settings)``; ``kinds/__init__.py`` is the table."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from workshop.checking.dockerfile import dockerfile_stages, stage_index
from workshop.checking.results import Outcome, error, failed, passed
from workshop.checking.settings import CheckSettings

if TYPE_CHECKING:
    from workshop.checking.session import Session


class Size(CheckSettings):
    """The image is under the lab's size limit (the GPU limit for a GPU model)."""

    kind: Literal["size"]


class SizeReduction(CheckSettings):
    """The second compared image is at least ``min_reduction`` smaller."""

    kind: Literal["size_reduction"]
    min_reduction: float = 0.75  # the fraction the second image saves on the first


class MultiStage(CheckSettings):
    """Several FROM stages; the final one copies only from them."""

    kind: Literal["multi_stage"]
    absent_imports: list[str] = Field(default_factory=list)  # modules the final image lacks


class Pinned(CheckSettings):
    """Every requirement ``==`` one version; every FROM a tag or digest, not latest."""

    kind: Literal["pinned"]
    file: str | None = None  # the requirements file (default requirements.txt)


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


def check_size(session: Session, check: Size) -> Outcome:
    """The image is under the lab's size limit (the GPU limit for a GPU model)."""
    spec = session.service_spec()
    if spec is None or spec.size_limit_mb is None:
        return error("lab.yml names no image with size_limit_mb for this check")
    built = session.build(spec.name)
    if built.tag is None:
        return failed(str(built.problem))
    size = session.size_mb(built.tag)
    if size is None:
        return error(f"cannot read the size of {built.tag}")
    limit, applied = spec.size_limit_mb, "CPU model"
    if spec.gpu_size_limit_mb:
        why = gpu_model(session, built.tag)
        if why:
            limit, applied = spec.gpu_size_limit_mb, f"GPU model: {why}"
    evidence = {"size_mb": size, "limit_mb": limit, "limit_applied": applied}
    if size >= limit:
        return failed(
            f"the image is {size:.0f} MB, over the {applied} limit of {limit:.0f} MB: use a "
            "slim base, a builder stage for compilers and pip, and no caches in the final stage",
            **evidence,
        )
    return passed(f"{size:.0f} MB (limit {limit:.0f} MB, {applied})", **evidence)


def check_size_reduction(session: Session, check: SizeReduction) -> Outcome:
    """The second compared image is at least ``min_reduction`` smaller than the first."""
    if len(session.lab.compare) != 2:
        return error("lab.yml needs compare: [before, after] for this check")
    sizes = {}
    for name in session.lab.compare:
        built = session.build(name)
        if built.tag is None:
            return failed(f"{name}: {built.problem}")
        sizes[name] = session.size_mb(built.tag) or 0.0
    before, after = (sizes[name] for name in session.lab.compare)
    reduction = 1 - after / before if before else 0.0
    evidence = {"before_mb": before, "after_mb": after, "reduction": round(reduction, 3)}
    if reduction < check.min_reduction:
        return failed(
            f"{before:.0f} MB -> {after:.0f} MB is {reduction:.0%} smaller; at least "
            f"{check.min_reduction:.0%} is expected",
            **evidence,
        )
    return passed(f"{before:.0f} MB -> {after:.0f} MB: {reduction:.0%} smaller", **evidence)


def check_multi_stage(session: Session, check: MultiStage) -> Outcome:
    """Several stages, and the final one takes only what it copies from a stage it does
    not descend from: a last stage that only extends a build stage (``FROM builder``)
    keeps everything that stage installed. Build-only libraries (``absent_imports``) are
    not in the image."""
    spec = session.service_spec()
    dockerfile = session.dockerfile(spec)
    text = session.target.read_text(dockerfile)
    if text is None:
        return failed(f"{dockerfile} is missing")
    stages = dockerfile_stages(text)
    names = [stage["name"] for stage in stages[:-1] if stage["name"]]
    evidence: dict[str, Any] = {"stages": len(stages), "names": names}
    if len(stages) < 2:
        return failed(
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
            return failed(
                f"the final stage starts FROM {final['base']}: it keeps everything that stage "
                "installed; start it from the base image and COPY --from what it needs",
                **evidence,
            )
        return failed("the final stage copies nothing from the other stages", **evidence)
    if check.absent_imports and spec:
        built = session.build(spec.name)
        if built.tag is None:
            return failed(str(built.problem), **evidence)
        for module in check.absent_imports:
            probe = session.docker(
                "run",
                "--rm",
                "--label",
                session.label,
                "--entrypoint",
                "python",
                built.tag,
                "-c",
                f"import {module}",
                timeout=120,
            )
            if probe.ok:
                return failed(
                    f"{module} can be imported in the final image: install it in a build "
                    "stage only",
                    **evidence,
                )
    return passed(
        f"{len(stages)} stages; the final one copies from {', '.join(dict.fromkeys(sources))}",
        **evidence,
    )


# A requirements line pinned to one version: name[extras]==version (markers and hashes
# may follow); -r/-c includes and options are read past.
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*===?\s*[^\s;,*]+(\s*;.*)?$")


def check_pinned(session: Session, check: Pinned) -> Outcome:
    """A rebuild next month gets the same image: every line of ``file`` (default
    requirements.txt) pins one version (``==``), and every FROM names a tag or a digest
    (its ARG default substituted), never ``latest`` nor none."""
    requirements = check.file or "requirements.txt"
    text = session.target.read_text(requirements)
    if text is None:
        return failed(f"{requirements} is missing")
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
        return failed(
            f"{requirements}: {loose[0]!r} is not pinned: write name==version "
            "(pip freeze shows what you tested with)",
            **evidence,
        )
    if floating:
        return failed(
            f"FROM {floating[0]} floats (no tag, or latest): name a version, e.g. "
            "python:3.11-slim, or a digest",
            **evidence,
        )
    return passed(
        f"{requirements} pins every package; the bases are {', '.join(bases)}", **evidence
    )
