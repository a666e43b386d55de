"""Images of the lab cloud, built offline from the Debian archive.

No registry is reachable from a classroom sandbox (and an air-gapped classroom is in
the same place), so nothing here is pulled: a minimal Debian root file system is made
with debootstrap and imported as the base image, and the student VM and classroom
registry images are built from it with the classic builder. Every tag carries a hash of
its recipe (the debootstrap arguments, or the build context plus its base's tag), so an
image is built once, reused while its recipe is unchanged, and rebuilt when it changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from workshop import locks
from workshop.errors import WorkshopError

IMAGES_DIR = Path(__file__).parent / "images"
RECIPE_LABEL = "org.workshop.recipe"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Bump when the way the base rootfs is assembled changes, to force a rebuild everywhere.
_BASE_RECIPE_VERSION = "2"


@dataclass(frozen=True)
class Distro:
    """A Debian release a lab cloud VM can run."""

    key: str
    suite: str
    version: str


DISTROS: dict[str, Distro] = {
    "debian13": Distro("debian13", "trixie", "13"),
    "debian12": Distro("debian12", "bookworm", "12"),
}
DEFAULT_DISTRO = "debian13"


@dataclass(frozen=True)
class BuiltImage:
    """An image the lab cloud needs, and whether this call had to build it."""

    tag: str
    built: bool
    seconds: float


def get_distro(key: str) -> Distro:
    """Look a distro up by its key, or fail with the list of supported ones."""
    try:
        return DISTROS[key]
    except KeyError:
        supported = ", ".join(DISTROS)
        raise WorkshopError(
            f"unknown distro {key!r}: use one of {supported} (e.g. --distro {DEFAULT_DISTRO})"
        ) from None


def mirror() -> str:
    """The Debian mirror for debootstrap and apt (``WORKSHOP_DEBIAN_MIRROR`` overrides)."""
    return os.environ.get("WORKSHOP_DEBIAN_MIRROR", DEFAULT_MIRROR)


def _digest(*parts: str | bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0")
    return sha.hexdigest()[:12]


def context_digest(context: Path, base_tag: str) -> str:
    parts: list[str | bytes] = [base_tag]
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        parts += [path.relative_to(context).as_posix(), path.read_bytes()]
    return _digest(*parts)


def _sources_deb822(distro: Distro) -> str:
    """apt sources as the official Debian images ship them (main, updates, security)."""
    security = os.environ.get("WORKSHOP_DEBIAN_SECURITY_MIRROR", DEFAULT_SECURITY_MIRROR)
    key = "/usr/share/keyrings/debian-archive-keyring.gpg"
    return (
        f"Types: deb\nURIs: {mirror()}\nSuites: {distro.suite} {distro.suite}-updates\n"
        f"Components: main\nSigned-By: {key}\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {distro.suite}-security\n"
        f"Components: main\nSigned-By: {key}\n"
    )


def base_tag(distro: Distro) -> str:
    """Tag of the minimal Debian base image for ``distro``."""
    recipe = _digest(_BASE_RECIPE_VERSION, distro.suite, mirror(), _sources_deb822(distro))
    return f"workshop/debian-base:{distro.suite}-{recipe}"


def _image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def build_base(client: docker.DockerClient, distro: Distro, *, force: bool = False) -> BuiltImage:
    """Make the Debian base image with debootstrap (about a minute), unless it exists."""
    with locks.exclusive("debian-base"):
        return _build_base(client, distro, force=force)


def _build_base(client: docker.DockerClient, distro: Distro, *, force: bool = False) -> BuiltImage:
    """``build_base``'s work, under its lock."""
    tag = base_tag(distro)
    if not force and _image_exists(client, tag):
        return BuiltImage(tag, built=False, seconds=0.0)
    if shutil.which("debootstrap") is None:
        raise WorkshopError("debootstrap is not installed: run 'make setup' (it apt-installs it)")
    if os.geteuid() != 0:
        raise WorkshopError("building the VM base image needs root (debootstrap): run as root")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="workshop-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=ca-certificates",
                distro.suite,
                str(rootfs),
                mirror(),
            ],
            what=f"debootstrap {distro.suite} from {mirror()}",
        )
        # Same apt layout as the official images, and no package caches in the image.
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(_sources_deb822(distro))
        _slim(rootfs)
        tarball = Path(tmp) / "rootfs.tar"
        _run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."],
            what="pack the root file system",
        )
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(
            str(tarball),
            repository=repository,
            tag=version,
            changes=['CMD ["/bin/bash"]', f"LABEL {RECIPE_LABEL}={version}"],
        )
    return BuiltImage(tag, built=True, seconds=time.monotonic() - started)


# What the official debian:*-slim images configure, so that every image built on this base
# stays small too: apt keeps no package caches, dpkg installs no docs, man pages or locales.
_APT_CACHES = (
    "/var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin"
)
_APT_CLEAN = f"""\
DPkg::Post-Invoke {{ "rm -f {_APT_CACHES} || true"; }};
APT::Update::Post-Invoke {{ "rm -f {_APT_CACHES} || true"; }};
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
"""
_DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
"""


def _slim(rootfs: Path) -> None:
    """Configure apt and dpkg as the slim images do, and drop what is already there."""
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(_APT_CLEAN)
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(_DPKG_SLIM)
    for cache in ("var/cache/apt", "var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (rootfs / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
    for directory in ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian"):
        shutil.rmtree(rootfs / directory, ignore_errors=True)
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    for path in (rootfs / "usr/share/doc").rglob("*"):
        if path.is_file() and path.name != "copyright":
            path.unlink()


def _run(command: list[str], *, what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise WorkshopError(f"{what} failed: {' / '.join(tail)}")


def image_tag(name: str, distro: Distro) -> str:
    """Tag of a lab cloud image built from ``images/<name>/`` on the distro's base."""
    return f"workshop/{name}:{distro.key}-{context_digest(IMAGES_DIR / name, base_tag(distro))}"


def build_image(
    client: docker.DockerClient, name: str, distro: Distro, *, force: bool = False
) -> BuiltImage:
    """Build ``images/<name>/Dockerfile`` on the distro's base image, unless it exists."""
    with locks.exclusive(f"vm-image-{name}"):
        return _build_image(client, name, distro, force=force)


def _build_image(
    client: docker.DockerClient, name: str, distro: Distro, *, force: bool = False
) -> BuiltImage:
    """``build_image``'s work, under its lock."""
    tag = image_tag(name, distro)
    if not force and _image_exists(client, tag):
        return BuiltImage(tag, built=False, seconds=0.0)
    base = build_base(client, distro)
    seconds = build_context(
        client,
        IMAGES_DIR / name,
        tag,
        {"BASE_IMAGE": base.tag},
        labels={RECIPE_LABEL: tag.partition(":")[2]},
    )
    return BuiltImage(tag, built=True, seconds=base.seconds + seconds)


def build_context(
    client: docker.DockerClient,
    context: Path,
    tag: str,
    buildargs: dict[str, str],
    *,
    labels: dict[str, str] | None = None,
    dockerfile: str = "Dockerfile",
    nocache: bool = False,
) -> float:
    """Build ``context`` with the classic builder; seconds taken. Failures name the step."""
    started = time.monotonic()
    try:
        client.images.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
            labels=labels or {},
            rm=True,
            forcerm=True,
            nocache=nocache,
        )
    except docker.errors.BuildError as exc:
        lines = [str(item.get("stream", item.get("error", ""))).strip() for item in exc.build_log]
        tail = " / ".join(line for line in lines if line)[-400:]
        raise WorkshopError(f"building {tag} failed: {tail}") from None
    return time.monotonic() - started
