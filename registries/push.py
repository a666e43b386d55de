"""Push images to several registries at once, then prove they arrived identical.

For each registry: log in (credentials stay in memory and go to the engine with each
request; nothing is written to ~/.docker/config.json) and ensure the repositories. Then
every (registry, image) push runs concurrently through the Docker engine, which skips the
layers a registry already has. Finally each manifest digest is read back from its registry
(``docker manifest inspect``'s engine endpoint) and compared across registries. One
registry failing never stops the others; its rows carry the error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import docker
import docker.errors
import requests
import urllib3.exceptions

from registries.base import Credentials, Registry, RegistryError, failure

# (push key "registry repository:tag", status, bytes sent, bytes to send)
ProgressFn = Callable[[str, str, int, int], None]
MAX_WORKERS = 8
# Seconds the engine may report nothing during a push before it counts as stalled. The
# engine reports progress while it uploads; the long quiet stretch is a registry checking a
# big layer after the upload (minutes for a GB layer on a cloud registry), so the default
# is generous: docker-py's own 60 s aborted pushes of ML images.
STALL_SECONDS = 600


@dataclass(frozen=True)
class SourceImage:
    """A local image and where it goes: ``repository:tag`` under the cohort's prefix."""

    local: str
    repository: str
    tag: str


def parse_image(spec: str) -> SourceImage:
    """``local[=repository:tag]``; without ``=``, the local name is the target."""
    local, _, target = spec.partition("=")
    target = target or local
    repository, _, tag = target.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = target, "latest"
    if not local or not repository:
        raise RegistryError(
            f"--images {spec!r}: expected LOCAL[=REPOSITORY:TAG], e.g. "
            "workshop/hello:debian13-abc=classroom/hello:1"
        )
    return SourceImage(local, repository, tag)


@dataclass
class PushResult:
    """One image in one registry: what was sent, what was skipped, what came back."""

    registry: str
    repository: str
    tag: str
    uri: str = ""
    digest: str | None = None
    bytes_uploaded: int = 0
    layers_pushed: int = 0
    layers_skipped: int = 0
    # The registry already held this image under the tag (same digest): nothing pushed, so
    # an IMMUTABLE repository (ECR) never sees a second push of the tag.
    already_there: bool = False
    seconds: float = 0.0
    error: str | None = None
    _auth: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def key(self) -> str:
        return f"{self.registry} {self.repository}:{self.tag}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("_auth")
        data["ok"] = self.ok
        return data


def target_repository(image: SourceImage, prefix: str) -> str:
    return f"{prefix.strip('/')}/{image.repository}" if prefix else image.repository


def _pairs(
    registries: dict[str, Registry], images: list[SourceImage], prefix: str
) -> list[tuple[SourceImage, PushResult]]:
    pairs = []
    for name, registry in registries.items():
        for image in images:
            result = PushResult(name, target_repository(image, prefix), image.tag)
            try:
                registry.check_name(result.repository)
            except RegistryError as exc:
                result.error = str(exc)
            pairs.append((image, result))
    return pairs


def plan(
    registries: dict[str, Registry], images: list[SourceImage], prefix: str = ""
) -> list[PushResult]:
    """What a run would do, checked without touching any registry (``--dry-run``)."""
    return [result for _, result in _pairs(registries, images, prefix)]


def _auth(credentials: Credentials) -> dict[str, str]:
    return {
        "username": credentials.username,
        "password": credentials.password,
        "serveraddress": credentials.registry,
    }


def _prepare(registry: Registry, repositories: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Log in and ensure every repository: (auth for the engine, repository -> URI)."""
    credentials = registry.login()
    uris = {repository: registry.ensure_repository(repository) for repository in repositories}
    return _auth(credentials), uris


def _already_there(engine: docker.DockerClient, image: SourceImage, result: PushResult) -> bool:
    """Whether the tag already points at the manifest this image was pushed as."""
    local = engine.api.inspect_image(image.local)
    ours = {d for d in local.get("RepoDigests") or [] if d.startswith(f"{result.uri}@")}
    if not ours:
        return False
    try:
        found = engine.api.inspect_distribution(
            f"{result.uri}:{result.tag}", auth_config=result._auth
        )["Descriptor"]["digest"]
    except docker.errors.APIError:  # no such tag yet (or not readable): push
        return False
    if f"{result.uri}@{found}" not in ours:
        return False
    result.digest = found
    result.layers_skipped = len(local.get("RootFS", {}).get("Layers") or [])
    result.already_there = True
    return True


def _push_one(
    engine: docker.DockerClient,
    image: SourceImage,
    result: PushResult,
    progress: ProgressFn | None,
) -> None:
    """Tag and push one image, counting layers sent and skipped from the stream."""
    started = time.monotonic()
    sent: dict[str, int] = {}
    totals: dict[str, int] = {}
    pushed: set[str] = set()
    skipped: set[str] = set()
    # The target tag stays, as after `docker tag` + `docker push`: with it the engine keeps
    # the pushed digest (RepoDigests), which tells the next run the image is already there.
    engine.api.tag(image.local, result.uri, result.tag)
    stream = engine.api.push(
        result.uri, tag=result.tag, auth_config=result._auth, stream=True, decode=True
    )
    for event in stream:
        if "error" in event:
            raise RegistryError(f"{result.registry}: push refused: {event['error']}")
        layer, status = event.get("id", ""), event.get("status", "")
        detail = event.get("progressDetail") or {}
        if status == "Pushing" and "current" in detail:
            sent[layer] = max(sent.get(layer, 0), int(detail["current"]))
            totals[layer] = max(totals.get(layer, 0), int(detail.get("total") or 0))
        elif status == "Pushed":
            pushed.add(layer)
        elif status == "Layer already exists" or status.startswith("Mounted from"):
            skipped.add(layer)
        if "aux" in event and "Digest" in event["aux"]:
            result.digest = event["aux"]["Digest"]
        if progress:
            progress(result.key, status, sum(sent.values()), sum(totals.values()))
    if result.digest is None:
        raise RegistryError(f"{result.registry}: the engine reported no digest for {result.uri}")
    result.layers_pushed = len(pushed)
    result.layers_skipped = len(skipped - pushed)
    result.bytes_uploaded = sum(sent[layer] for layer in pushed if layer in sent)
    result.seconds = round(time.monotonic() - started, 2)


def _verify(engine: docker.DockerClient, results: list[PushResult]) -> None:
    """Read every digest back from its registry; the same image must agree everywhere."""
    for result in results:
        if not result.ok:
            continue
        try:
            found = engine.api.inspect_distribution(
                f"{result.uri}:{result.tag}", auth_config=result._auth
            )["Descriptor"]["digest"]
        except docker.errors.APIError as exc:
            result.error = f"{result.registry}: cannot read the pushed manifest back: {exc}"
            continue
        if found != result.digest:
            result.error = f"{result.registry}: registry holds {found}, pushed {result.digest}"
    by_image: dict[tuple[str, str], set[str]] = {}
    for result in results:
        if result.ok and result.digest:
            by_image.setdefault((result.repository, result.tag), set()).add(result.digest)
    for result in results:
        digests = by_image.get((result.repository, result.tag), set())
        if result.ok and len(digests) > 1:
            result.error = f"digests differ across registries: {sorted(digests)}"


def push_all(
    engine: docker.DockerClient,
    registries: dict[str, Registry],
    images: list[SourceImage],
    *,
    prefix: str = "",
    progress: ProgressFn | None = None,
    workers: int = MAX_WORKERS,
    stall_seconds: float = STALL_SECONDS,
) -> list[PushResult]:
    """Push every image to every registry concurrently; one result per pair.

    A push the engine reports nothing about for ``stall_seconds`` fails alone, named."""
    missing = []
    for image in images:
        try:
            engine.images.get(image.local)
        except docker.errors.ImageNotFound:
            missing.append(image.local)
    if missing:
        raise RegistryError(
            f"no local image {', '.join(missing)}: build or pull it first, or name others "
            "with --images"
        )
    pairs = _pairs(registries, images, prefix)
    results = [result for _, result in pairs]
    repositories = list(dict.fromkeys(target_repository(image, prefix) for image in images))

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(registries) or 1))) as pool:
        prepared = {
            name: pool.submit(_prepare, registry, repositories)
            for name, registry in registries.items()
        }
    for result in results:
        if not result.ok:
            continue
        try:
            auth, uris = prepared[result.registry].result()
        except (docker.errors.DockerException, OSError) as exc:
            result.error = str(exc)
            continue
        except Exception as exc:  # one registry's failure is its rows; the others go on
            result.error = failure(result.registry, exc)
            continue
        result.uri, result._auth = uris[result.repository], auth

    todo = [(image, result) for image, result in pairs if result.ok]

    def run(image: SourceImage, result: PushResult) -> None:
        started = time.monotonic()
        try:
            if _already_there(engine, image, result):
                result.seconds = round(time.monotonic() - started, 2)
            else:
                _push_one(engine, image, result, progress)
        except RegistryError as exc:
            result.error = str(exc)
        except docker.errors.DockerException as exc:
            result.error = f"{result.registry}: {exc}"
        # A read timeout, raised by requests before the stream starts, by urllib3 inside it.
        except (
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
            TimeoutError,
        ) as exc:
            result.error = (
                f"{result.registry}: the push of {result.uri}:{result.tag} stalled: the engine "
                f"reported nothing for {stall_seconds:.0f} s ({type(exc).__name__}); check the "
                "registry answers, then run again (layers already sent are skipped)"
            )
        if progress:
            progress(result.key, "done" if result.ok else "failed", 0, 0)

    # The engine's read timeout, for these requests only (restored after).
    engine_timeout = engine.api.timeout
    engine.api.timeout = stall_seconds
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo) or 1))) as pool:
            for future in [pool.submit(run, image, result) for image, result in todo]:
                future.result()
    finally:
        engine.api.timeout = engine_timeout
    _verify(engine, results)
    return results
