"""Offline stand-ins for the official base images the labs use (``build-bases``).

The labs' Dockerfiles and compose files keep the official images as their defaults
(``ARG BASE_IMAGE=python:3.11-slim``, ``redis:7``, ``postgres:15``, ``nginx:1.22``). Where
they cannot be pulled (this machine, an air-gapped classroom), the kit builds equivalents
from Debian 12 packages, tags them ``workshop/library/<name>:<tag>`` locally, and can
publish them to the classroom registry as ``<registry>/library/<name>:<tag>``, the path
Docker Hub's official images have; builds then pass ``--build-arg BASE_IMAGE=...``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors

from workshop import locks, trust
from workshop.errors import WorkshopError
from workshop.labcloud import images
from workshop.labs import LABS_DIR

if TYPE_CHECKING:
    from registries.push import SourceImage

BASES_DIR = LABS_DIR / "bases"
LOCAL_NAMESPACE = "workshop/library"
REGISTRY_NAMESPACE = "library"
# Debian 12 ships Python 3.11, Redis 7.0, PostgreSQL 15 and nginx 1.22: the official tags
# these stand in for.
DISTRO = "debian12"
# Opt-in: the stand-ins themselves trust that bundle, so a student's unmodified
# Dockerfile can `pip install` behind the proxy (workshop prepare, workshop grade).
TRUST_SETTING = "WORKSHOP_BASES_TRUST_EXTRA_CA"
TRUSTED_PATH = "/usr/local/share/ca-certificates/workshop-extra-ca.crt"


def trusted_bundle(requested: bool | None = None) -> Path | None:
    """The bundle the stand-ins should trust: None unless asked for (``requested``, else
    ``TRUST_SETTING=1`` in the environment)."""
    if requested is None:
        requested = os.environ.get(TRUST_SETTING, "").lower() in ("1", "true", "yes")
    if not requested:
        return None
    bundle = trust.extra_ca_bundle()
    if bundle is None:
        raise WorkshopError(
            "the base images should trust the extra CA bundle, but there is none at "
            f"{trust.configured_path()}: set "
            "WORKSHOP_EXTRA_CA_BUNDLE to the proxy's CA file"
        )
    return bundle


@dataclass(frozen=True)
class Base:
    """One official image and its offline stand-in."""

    name: str
    tag: str

    @property
    def official(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def local(self) -> str:
        return f"{LOCAL_NAMESPACE}/{self.name}:{self.tag}"

    @property
    def context(self) -> Path:
        return BASES_DIR / self.name


BASES: dict[str, Base] = {
    base.name: base
    for base in (
        Base("python", "3.11-slim"),
        Base("redis", "7"),
        Base("postgres", "15"),
        Base("nginx", "1.22"),
    )
}


@dataclass
class BaseResult:
    """What build-bases did for one image."""

    official: str
    local: str
    built: bool
    seconds: float
    size_mb: float
    pushed: str | None = None


def _recipe(base: Base, debian: str) -> str:
    return images.context_digest(base.context, debian)


def build_base(client: docker.DockerClient, base: Base, *, force: bool = False) -> BaseResult:
    """Build one stand-in on the Debian 12 base, unless an image of this recipe exists."""
    with locks.exclusive(f"lab-base-{base.local}"):
        return _build_base(client, base, force=force)


def _build_base(client: docker.DockerClient, base: Base, *, force: bool = False) -> BaseResult:
    """``build_base``'s work, under its lock."""
    distro = images.get_distro(DISTRO)
    debian = images.build_base(client, distro)
    recipe = _recipe(base, debian.tag)
    try:
        existing = client.images.get(base.local)
        if not force and existing.labels.get(images.RECIPE_LABEL) == recipe:
            return BaseResult(base.official, base.local, False, 0.0, existing.attrs["Size"] / 1e6)
    except docker.errors.ImageNotFound:
        pass
    labels = {images.RECIPE_LABEL: recipe, "org.workshop.stands-in-for": base.official}
    built = images.build_context(
        client, base.context, base.local, {"BASE_IMAGE": debian.tag}, labels=labels
    )
    size = client.images.get(base.local).attrs["Size"] / 1e6
    return BaseResult(base.official, base.local, True, built + debian.seconds, size)


def publish(client: docker.DockerClient, results: list[BaseResult], cohort: str) -> None:
    """Push the stand-ins to the cohort's classroom registry as ``library/<name>:<tag>``,
    through push_all (login, push, digest read back)."""
    from registries import push
    from workshop.labcloud.registry import classroom_registry

    sources = push_sources(results)
    pushed = push.push_all(client, {"local": classroom_registry(cohort)}, sources)
    errors = [item.error for item in pushed if item.error]
    if errors:
        raise WorkshopError(f"publishing the base images failed: {'; '.join(errors)}")
    for result, item in zip(results, pushed, strict=True):
        result.pushed = f"{item.uri}:{item.tag}"


def push_sources(results: list[BaseResult]) -> list[SourceImage]:
    """Each built stand-in and where it goes in a registry: ``library/<name>:<tag>``."""
    from registries.push import SourceImage

    sources = []
    for result in results:
        name, _, tag = result.official.partition(":")
        sources.append(SourceImage(result.local, f"{REGISTRY_NAMESPACE}/{name}", tag))
    return sources


def trusting(client: docker.DockerClient, result: BaseResult, bundle: Path) -> BaseResult:
    """The stand-in with ``bundle`` added to its CA store, and pip, requests and OpenSSL
    pointed at that store: ``<local>-extra-ca``, rebuilt when the stand-in or the bundle
    changes."""
    tag = f"{result.local}-extra-ca"
    data = bundle.read_bytes()
    parent_image = client.images.get(result.local)
    parent = parent_image.id
    user = parent_image.attrs["Config"].get("User") or "root"
    recipe = hashlib.sha256(parent.encode() + data).hexdigest()[:16]
    try:
        existing = client.images.get(tag)
        if existing.labels.get(images.RECIPE_LABEL) == recipe:
            return BaseResult(result.official, tag, False, 0.0, existing.attrs["Size"] / 1e6)
    except docker.errors.ImageNotFound:
        pass
    store = "/etc/ssl/certs/ca-certificates.crt"
    dockerfile = (
        f"FROM {result.local}\n"
        f"USER root\n"
        f"COPY extra-ca.crt {TRUSTED_PATH}\n"
        f"RUN mkdir -p /etc/ssl/certs && {{ (command -v update-ca-certificates >/dev/null "
        f"&& update-ca-certificates) || cat {TRUSTED_PATH} >> {store}; }}\n"
        f"ENV PIP_CERT={store} REQUESTS_CA_BUNDLE={store} SSL_CERT_FILE={store}\n"
        f"USER {user}\n"
    ).encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for name, content in (("Dockerfile", dockerfile), ("extra-ca.crt", data)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    context.seek(0)
    try:
        client.images.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels={images.RECIPE_LABEL: recipe, "org.workshop.stands-in-for": result.official},
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        raise WorkshopError(f"adding the extra CA bundle to {result.local} failed: {exc}") from None
    size = client.images.get(tag).attrs["Size"] / 1e6
    return BaseResult(result.official, tag, True, result.seconds, size)


def build_bases(
    client: docker.DockerClient,
    names: list[str] | None = None,
    *,
    cohort: str | None = None,
    force: bool = False,
    extra_ca: Path | None = None,
) -> list[BaseResult]:
    """Build the stand-ins (all, or ``names``); with ``extra_ca``, the variants that trust
    it; with ``cohort``, push them to its registry."""
    unknown = sorted(set(names or []) - set(BASES))
    if unknown:
        raise WorkshopError(
            f"unknown base image {', '.join(unknown)}: choose from {', '.join(BASES)}"
        )
    results = [build_base(client, BASES[name], force=force) for name in names or BASES]
    if extra_ca is not None:
        results = [trusting(client, result, extra_ca) for result in results]
    if cohort:
        publish(client, results, cohort)
    return results


def build_arg(name: str, registry: str | None = None) -> str:
    """What to pass as BASE_IMAGE for ``name``: the registry's copy, or the local tag."""
    base = BASES[name]
    return f"{registry}/{REGISTRY_NAMESPACE}/{base.official}" if registry else base.local


def standing_in_for(reference: str) -> str | None:
    """The stand-in's name when ``reference`` is an official image the classroom has
    (``python:3.11-slim``, ``docker.io/library/python:3.11-slim``), else None."""
    name = reference.strip().strip("\"'")
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return next((base.name for base in BASES.values() if base.official == name), None)
