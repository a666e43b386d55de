"""push_all end to end: real pushes through the Docker engine to real distribution
registries behind the ECR (moto), Artifact Registry and ACR fakes, and the classroom one."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator

import pytest
import yaml

from registries import config, push
from registries.acr import AcrRegistry
from registries.artifact import ArtifactRegistry
from registries.base import Credentials
from registries.ecr import EcrRegistry, EcrSettings
from tests.conftest import REPO, unique_cohort
from tests.fakes.clouds import EntraToken, acr_settings
from tests.registries.test_artifact import settings as gcr_settings

SCRIPT = REPO / "scripts" / "push_all.py"


def build_image(engine, tag: str, files: dict[str, bytes]) -> str:
    """A FROM-scratch image with one layer per file (nothing to pull)."""
    lines = ["FROM scratch"] + [f"COPY {name} /{name}" for name in files]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        for name, data in {"Dockerfile": "\n".join(lines).encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    context.seek(0)
    engine.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    return tag


@pytest.fixture(scope="module")
def images(engine):
    tag = unique_cohort("push")
    made = [
        build_image(engine, f"kit-test/{tag}-a:1", {"model.bin": os.urandom(300_000)}),
        build_image(
            engine,
            f"kit-test/{tag}-b:1",
            {"weights.bin": os.urandom(200_000), "app.py": b"print('hi')\n"},
        ),
    ]
    yield [push.SourceImage(local, local.rsplit(":", 1)[0], "1") for local in made]
    for local in made:  # by ID: every registry's tag of it goes too
        engine.images.remove(engine.images.get(local).id, force=True)


def ecr_settings(aws) -> EcrSettings:
    return EcrSettings(
        region="eu-west-1", endpoint_url=aws["endpoint"], registry_host=aws["backing"].address
    )


def three_registries(aws, gcp, azure) -> dict:
    return {
        "ecr": EcrRegistry(ecr_settings(aws)),
        "gcr": ArtifactRegistry(gcr_settings(gcp["fake"], gcp["backing"], gcp["key_file"])),
        "acr": AcrRegistry(acr_settings(azure), credential=EntraToken()),
    }


def test_first_run_uploads_second_skips_every_layer_and_digests_agree(
    engine, images, aws, gcp, azure
):
    registries = three_registries(aws, gcp, azure)
    events = []
    first = push.push_all(
        engine, registries, images, prefix="nov-2026", progress=lambda *e: events.append(e)
    )
    assert [r.error for r in first] == [None] * 6
    assert {(r.registry, r.repository) for r in first} == {
        (name, f"nov-2026/{image.repository}") for name in registries for image in images
    }
    for result in first:
        assert result.layers_pushed >= 1
        assert result.bytes_uploaded > 100_000, "the random payload was really sent"
    for image in images:
        digests = {r.digest for r in first if r.repository.endswith(image.repository)}
        assert len(digests) == 1, "the same image has the same digest everywhere"
    # What the registries hold is what was pushed.
    repo_a = f"nov-2026/{images[0].repository}"
    digest_a = next(r.digest for r in first if r.repository == repo_a)
    assert aws["backing"].tags(repo_a) == {"1": digest_a}
    assert registries["gcr"].list_tags(repo_a) == ["1"]
    assert azure.registry.tags(repo_a) == {"1": digest_a}
    assert {e[0] for e in events} == {r.key for r in first}, "progress for every push"
    local = engine.api.inspect_image(images[0].local)
    uri_a = next(r.uri for r in first if r.repository == repo_a and r.registry == "ecr")
    assert f"{uri_a}@{digest_a}" in local["RepoDigests"], "the engine keeps the digest"

    # Each tag already points at the pushed manifest: no second push (an IMMUTABLE ECR
    # repository refuses one even of the same digest), and no push events at all.
    events.clear()
    second = push.push_all(
        engine, registries, images, prefix="nov-2026", progress=lambda *e: events.append(e)
    )
    assert [r.error for r in second] == [None] * 6
    for before, after in zip(first, second, strict=True):
        assert after.already_there
        assert after.layers_pushed == 0
        assert after.bytes_uploaded == 0
        assert after.layers_skipped == before.layers_pushed + before.layers_skipped
        assert after.digest == before.digest
    assert {status for _, status, *_ in events} == {"done"}, "nothing was pushed"

    # A tag moved to another image in the registry is pushed again, skipping the layers it has.
    moved = push.SourceImage(images[1].local, images[0].repository, "1")
    third = push.push_all(engine, {"ecr": registries["ecr"]}, [moved], prefix="nov-2026")
    assert third[0].error is None
    assert not third[0].already_there
    assert aws["backing"].tags(repo_a) == {"1": third[0].digest}
    assert third[0].digest != digest_a


def test_layers_the_registry_has_in_another_repository_are_mounted_not_sent(engine, images, aws):
    """The same image under a second name: the engine mounts its layers from the first
    repository ("Mounted from ..."), which counts as skipped, and uploads nothing."""
    registries = {"ecr": EcrRegistry(ecr_settings(aws))}
    first = push.push_all(engine, registries, [images[0]], prefix="mount-2026")
    assert first[0].error is None
    again = push.SourceImage(images[0].local, f"{images[0].repository}-copy", "1")
    statuses: list[str] = []
    second = push.push_all(
        engine, registries, [again], prefix="mount-2026", progress=lambda *e: statuses.append(e[1])
    )
    assert second[0].error is None
    assert any(status.startswith("Mounted from") for status in statuses), statuses
    assert second[0].layers_pushed == 0
    assert second[0].layers_skipped == first[0].layers_pushed + first[0].layers_skipped
    assert second[0].bytes_uploaded == 0
    assert second[0].digest == first[0].digest


@contextlib.contextmanager
def unanswering_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a registry that hangs)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


class Unanswering:
    """The adapter side of a registry whose API needs no call to log in: the stall comes
    where it comes in class, while the engine pushes."""

    name = "hung"

    def __init__(self, address: str) -> None:
        self.address = address

    def check_name(self, repository: str) -> None:
        """Any name: the test is about the push."""

    def login(self) -> Credentials:
        return Credentials(self.address, "student", "not-a-secret")

    def ensure_repository(self, repository: str) -> str:
        return f"{self.address}/{repository}"


def test_a_registry_that_stops_answering_fails_alone_and_says_so(engine, images, aws):
    with unanswering_server() as port:
        registries = {
            "ecr": EcrRegistry(ecr_settings(aws)),
            "hung": Unanswering(f"127.0.0.1:{port}"),
        }
        results = push.push_all(engine, registries, images[:1], prefix="stall", stall_seconds=5)
    by_registry = {result.registry: result for result in results}
    assert by_registry["ecr"].error is None
    assert by_registry["ecr"].digest
    error = by_registry["hung"].error or ""
    assert f"the push of 127.0.0.1:{port}/stall/{images[0].repository}:1 stalled" in error
    assert "reported nothing for 5 s" in error
    assert engine.api.timeout != 5, "the engine client's own timeout is restored"


def test_a_registry_stopped_mid_run_fails_alone(engine, images, aws, gcp, azure, tmp_path):
    registries = three_registries(aws, gcp, azure)
    stopped = []

    def stop_gcr_on_first_event(key, status, done, total):
        if key.startswith("gcr ") and not stopped:
            gcp["backing"].stop()
            stopped.append(key)

    try:
        results = push.push_all(
            engine, registries, images, prefix="dec-2026", progress=stop_gcr_on_first_event
        )
    finally:
        gcp["backing"].start()
    assert stopped
    by_registry = {name: [r for r in results if r.registry == name] for name in registries}
    assert all(r.ok for r in by_registry["ecr"] + by_registry["acr"])
    assert all(not r.ok for r in by_registry["gcr"])
    assert all(r.error.startswith("gcr") for r in by_registry["gcr"])


def run_script(*args, env=None):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture
def registries_file(tmp_path, aws, gcp):
    path = tmp_path / "registries.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "ecr": {
                    "region": "eu-west-1",
                    "endpoint_url": aws["endpoint"],
                    "registry_host": aws["backing"].address,
                },
                "gcr": {
                    "project": "ml-workshop",
                    "location": "europe-west1",
                    "credentials_file": gcp["key_file"],
                    "endpoint": gcp["fake"].endpoint,
                    "registry_host": gcp["backing"].address,
                },
            }
        )
    )
    return path


def test_the_script_pushes_and_reports_json(images, registries_file, aws):
    specs = [f"{image.local}={image.repository}:7" for image in images]
    args = ["--registries", "ecr,gcr", "--config", str(registries_file), "--json"]
    for spec in specs:
        args += ["--images", spec]
    started = time.monotonic()
    result = run_script(*args, "--cohort", "script-2026", env=aws["env"])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [row["ok"] for row in report["results"]] == [True] * 4
    assert {row["tag"] for row in report["results"]} == {"7"}
    assert all(row["digest"].startswith("sha256:") for row in report["results"])
    assert time.monotonic() - started < 300
    for secret in ("testing", "ya29."):
        assert secret not in result.stdout + result.stderr

    plan = run_script(*args, "--dry-run", env=aws["env"])
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["dry_run"] is True


def test_bad_input_is_one_line(images, registries_file, aws, tmp_path):
    image = f"--images={images[0].local}"
    unknown = run_script("--registries", "ecr,dockerhub", image, "--config", str(registries_file))
    assert unknown.returncode == 2
    assert "unknown registry 'dockerhub': choose from local, ecr, gcr, acr" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    bad_name = run_script(
        "--registries", "gcr", f"{image}=Bad_Name:1", "--config", str(registries_file), "--json"
    )
    assert bad_name.returncode == 1
    assert "gcr: invalid repository name 'Bad_Name'" in bad_name.stdout

    broken = tmp_path / "broken.yml"
    broken.write_text("ecr:\n  regoin: eu-west-1\n")
    typo = run_script("--registries", "ecr", image, "--config", str(broken))
    assert typo.returncode == 2
    assert "ecr.region: field required" in typo.stderr
    assert "ecr.regoin: unexpected keyword argument" in typo.stderr

    # gcr's key file is missing: gcr fails with the fix, ecr still pushes.
    config_data = yaml.safe_load(registries_file.read_text())
    config_data["gcr"]["credentials_file"] = str(tmp_path / "absent.json")
    registries_file.write_text(yaml.safe_dump(config_data))
    partial = run_script(
        "--registries",
        "ecr,gcr",
        image,
        "--config",
        str(registries_file),
        "--json",
        env=aws["env"],
    )
    assert partial.returncode == 1
    rows = {row["registry"]: row for row in json.loads(partial.stdout)["results"]}
    assert rows["ecr"]["ok"] is True
    assert "gcr: no usable Google credentials" in rows["gcr"]["error"]
    assert "failed: gcr" in partial.stderr

    unconfigured = run_script("--registries", "acr", image, "--config", str(registries_file))
    assert unconfigured.returncode == 1
    assert "acr: not configured: add the 'acr:' section" in unconfigured.stderr


def test_names_parse_and_unknown_names_are_refused():
    assert config.parse_names("ecr, gcr,ecr") == ["ecr", "gcr"]
    with pytest.raises(config.RegistryError, match="unknown registry 'quay'"):
        config.parse_names("quay")
