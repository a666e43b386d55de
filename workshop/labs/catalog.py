"""The labs as data: each ``workshop/labs/<NN-name>/lab.yml``, parsed and checked once.

``lab.yml`` says what a lab builds (images, their build contexts, the official base each
one defaults to, size limits), how it runs (ports, environment), how to tell it is up
(the health URL) and what proves it works (checks). The kit's tooling (builds, tests,
deploy and verify) reads it from here instead of knowing each lab.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

import docker
from pydantic import BaseModel, ConfigDict, Field

from workshop import yamlfile
from workshop.errors import WorkshopError
from workshop.labcloud import images
from workshop.labs import bases

LABS_DIR = Path(__file__).parent
# The builder stage trusts what this host trusts (a proxy's CA included): copied in as
# extra-ca.crt for the build and removed after; never in a final image (README).
DEFAULT_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSpec(Strict):
    name: str
    context: str = "."
    dockerfile: str = "Dockerfile"
    base: str | None = None  # a key of bases.BASES: passed as BASE_IMAGE
    size_limit_mb: float | None = None
    size_goal_mb: float | None = None
    needs_model: bool = False
    publish_as: str | None = None  # repository:tag in the classroom registry


class Check(Strict):
    name: str
    kind: Literal[
        "health",  # GET the health URL: 200
        "predict",  # POST file to /predict: expect_top1_contains / expect_top5_contains
        "reject",  # POST a non-image: expect_status
        "size",  # the image is under size_limit_mb
        "size_reduction",  # compare: the second image is >= 75% smaller
        "layer_reuse",  # a code-only change rebuilds no dependency layer
        "non_root",  # the container's user is not root
        "graceful_shutdown",  # docker stop during a slow request: it completes, exit 0
        "multi_stage",  # several FROM stages; build-only libraries absent
        "env_config",  # PORT from the environment is honoured
        "readme",  # README.md with build, run, configuration
        "script",  # the lab's script runs to "ok"
        "cache_hit",  # the same request again: X-Cache hit
        "database_row",  # a prediction lands in PostgreSQL
        "replicas",  # scaled service: more than one instance answers
        "lint",  # the lab's workflow passes actionlint
    ]
    file: str | None = None
    expect_top1_contains: str | None = None
    expect_top5_contains: list[str] = Field(default_factory=list)
    expect_status: int | None = None


class Lab(Strict):
    name: str
    title: str
    lesson: str
    images: list[ImageSpec] = Field(default_factory=list)
    uses: list[str] = Field(default_factory=list)  # images of other labs it runs
    port: int | None = None
    health: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    compare: list[str] = Field(default_factory=list)  # [before, after] image names: sizes
    directory: Path = Field(default=Path(), exclude=True)

    def image_tag(self, image: ImageSpec) -> str:
        return f"workshop-labs/{self.name}-{image.name}:latest"

    def image(self, name: str) -> ImageSpec:
        return next(image for image in self.images if image.name == name)


def _directories() -> list[Path]:
    return [d for d in sorted(LABS_DIR.iterdir()) if (d / "lab.yml").exists()]


def _parse(directory: Path) -> Lab:
    lab = yamlfile.load_model(directory / "lab.yml", Lab)
    lab.directory = directory
    return lab


def load(name: str) -> Lab:
    """One lab by directory name (``02-image-classifier``) or its short name."""
    directories = _directories()
    found = next((d for d in directories if name in (d.name, d.name.split("-", 1)[-1])), None)
    if found is None:
        known = ", ".join(d.name for d in directories)
        raise WorkshopError(f"unknown lab {name!r}: choose from {known}")
    return _parse(found)


def all_labs() -> list[Lab]:
    return [_parse(directory) for directory in _directories()]


def build(
    client: docker.DockerClient,
    lab: Lab,
    image: ImageSpec,
    *,
    base_registry: str | None = None,
    dockerfile: str | None = None,
    tag: str | None = None,
    nocache: bool = False,
) -> tuple[str, float]:
    """Build one lab image on the offline stand-in of its official base; (tag, seconds)."""
    if image.needs_model:
        from workshop.labs import model

        model.prepare()
    buildargs = {}
    if image.base:
        if not base_registry:
            bases.build_base(client, bases.BASES[image.base])
        buildargs["BASE_IMAGE"] = bases.build_arg(image.base, base_registry)
    context = lab.directory / image.context
    bundle = Path(os.environ.get("WORKSHOP_EXTRA_CA_BUNDLE", DEFAULT_CA_BUNDLE))
    extra = context / "extra-ca.crt"
    tag = tag or lab.image_tag(image)
    started = time.monotonic()
    try:
        if bundle.is_file():
            extra.write_bytes(bundle.read_bytes())
        images.build_context(
            client,
            context,
            tag,
            buildargs,
            dockerfile=dockerfile or image.dockerfile,
            nocache=nocache,
        )
    finally:
        extra.unlink(missing_ok=True)
    return tag, time.monotonic() - started
