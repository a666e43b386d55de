"""The labs as data: each ``labs/<NN-name>/lab.yml``, parsed and checked once.

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

from registries.push import SourceImage
from workshop import labs, locks, trust, yamlfile
from workshop.errors import WorkshopError
from workshop.labcloud import images
from workshop.labs import bases

LABS_DIR = labs.LABS_DIR  # the content: each lab a directory with a lab.yml


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageSpec(Strict):
    name: str
    context: str = "."
    dockerfile: str = "Dockerfile"
    base: str | None = None  # a key of bases.BASES: passed as BASE_IMAGE
    size_limit_mb: float | None = None
    # the limit for a GPU model (a CUDA base, or LABEL org.workshop.gpu="true")
    gpu_size_limit_mb: float | None = None
    size_goal_mb: float | None = None
    needs_model: bool = False
    publish_as: str | None = None  # repository:tag in the classroom registry
    # On a student's VM, run this lab's published image ("02-image-classifier/classifier")
    # instead of building one: the student's copy does not hold its source.
    from_lab: str | None = None
    # RUN --mount and the like: built with BuildKit (the buildx CLI), never docker-py's
    # classic builder (``build`` refuses it; the lab tests and VMs use BuildKit).
    buildkit: bool = False


class CheckEntry(BaseModel):
    """One requirement of the lab as lab.yml writes it: a name, a kind, and that kind's
    settings. The check engine (``workshop/checking/kinds``) owns the kinds: it reads each
    entry through its kind's settings model, which refuses a setting of another kind."""

    model_config = ConfigDict(extra="allow")

    name: str
    kind: str


class Volume(Strict):
    """A named volume the service's containers mount (the diffusion lab's weights)."""

    name: str
    target: str
    read_only: bool = True
    # Run once a session in the lab's image, as root with the volume writable, before the
    # service starts (idempotent: e.g. write a test model where the volume has none).
    prepare: list[str] = Field(default_factory=list)


class Handout(Strict):
    """What a student's copy of the lab holds (``~/labs/<lab>/``), and the solution.

    The copy is the lab's README, the ``files`` given as they are, the lab's ``starter/``
    laid over them (``starter/app/main.py`` becomes ``app/main.py``) and the ``inputs``
    the instructor hands out. ``solution`` files complete it into the reference solution,
    delivered only on request into ``solution/``.
    """

    source: str = "."  # where files and solution are, relative to the lab directory
    files: list[str] = Field(default_factory=list)  # files or directories (ending in /)
    solution: list[str] = Field(default_factory=list)
    inputs: list[Literal["classifier-model", "photos"]] = Field(default_factory=list)
    readme_as: str = "README.md"


class Lab(Strict):
    name: str
    title: str
    lesson: str
    images: list[ImageSpec] = Field(default_factory=list)
    uses: list[str] = Field(default_factory=list)  # images of other labs it runs
    port: int | None = None
    health: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    volumes: list[Volume] = Field(default_factory=list)
    checks: list[CheckEntry] = Field(default_factory=list)
    compare: list[str] = Field(default_factory=list)  # [before, after] image names: sizes
    compose: str | None = None  # the lab runs as a Compose project from this file
    service: str | None = None  # the image whose container the checks talk to
    handout: Handout = Field(default_factory=Handout)
    directory: Path = Field(default=Path(), exclude=True)

    def image_tag(self, image: ImageSpec) -> str:
        return f"workshop-labs/{self.name}-{image.name}:latest"

    def image(self, name: str) -> ImageSpec:
        return next(image for image in self.images if image.name == name)

    @property
    def service_image(self) -> str | None:
        """The image the service checks talk to: ``service``, else the last one built
        (a compare lab's "after"), else the first image the lab uses from another lab."""
        if self.service:
            return self.service
        built = [image.name for image in self.images if not image.from_lab]
        if built:
            return built[-1]
        return self.uses[0] if self.uses else None

    def student_context(self, image: ImageSpec) -> str:
        """The image's build context inside the student's copy (relative to it)."""
        source = (self.directory / self.handout.source).resolve()
        return os.path.relpath((self.directory / image.context).resolve(), source)


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
    """Build one lab image on the offline stand-in of its official base; (tag, seconds).
    One build of a lab image at a time: each writes extra-ca.crt into the lab's context
    and removes it after."""
    with locks.exclusive(f"lab-{lab.name}-{image.name}"):
        return _build(
            client,
            lab,
            image,
            base_registry=base_registry,
            dockerfile=dockerfile,
            tag=tag,
            nocache=nocache,
        )


def _build(
    client: docker.DockerClient,
    lab: Lab,
    image: ImageSpec,
    *,
    base_registry: str | None,
    dockerfile: str | None,
    tag: str | None,
    nocache: bool,
) -> tuple[str, float]:
    if image.buildkit:
        raise WorkshopError(
            f"{lab.name}/{image.name} needs BuildKit (RUN --mount): build it with the docker "
            "CLI and buildx (the lab's checks do), not the Docker SDK's classic builder"
        )
    if image.needs_model:
        from workshop.labs import classifier_model

        classifier_model.prepare()
    buildargs = {}
    if image.base:
        if not base_registry:
            bases.build_base(client, bases.BASES[image.base])
        buildargs["BASE_IMAGE"] = bases.build_arg(image.base, base_registry)
    context = lab.directory / image.context
    # The builder stage trusts what this host trusts (a proxy's CA included): copied in as
    # extra-ca.crt for the build and removed after; never in a final image (README).
    bundle = trust.extra_ca_bundle()
    extra = context / "extra-ca.crt"
    tag = tag or lab.image_tag(image)
    started = time.monotonic()
    try:
        if bundle is not None:
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


def lab_images(engine: docker.DockerClient) -> list[SourceImage]:
    """The images a cohort pulls: ``classroom/hello:1`` and each lab's published images
    (``publish_as`` in its lab.yml), built here first (offline, cached)."""
    built = images.build_image(engine, "hello", images.get_distro(images.DEFAULT_DISTRO))
    sources = [SourceImage(built.tag, "classroom/hello", "1")]
    for lab in all_labs():
        for image in lab.images:
            if image.publish_as:
                tag, _ = build(engine, lab, image)
                repository, _, version = image.publish_as.rpartition(":")
                sources.append(SourceImage(tag, repository, version))
    return sources
