"""Activity 4 (Lesson 07): the text-to-image image, built with a CPU torch here, judged by
its lab.yml's checks on the tiny pipeline (health, a PNG of the asked size, the same seed
the same picture, clear 422s, size, non-root, graceful stop); how it refuses to start
without a model or a GPU it was told to use; its Compose file's GPU reservation. The GPU
itself: scripts/gpu_check.sh, on a machine the `device` tool lends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.workshop.labs import work
from workshop import checking
from workshop.labs import catalog

LAB = catalog.load("07-gpu-diffusion")
TORCH_WHEELS = Path(os.environ.get("WORKSHOP_TORCH_FIND_LINKS", "/opt/wheels"))


def cpu_torch_wheel() -> Path:
    found = sorted(TORCH_WHEELS.glob("torch-2.13.0+cpu-*.whl"))
    if not found:
        pytest.fail(
            f"no CPU torch 2.13.0 wheel in {TORCH_WHEELS}: set WORKSHOP_TORCH_FIND_LINKS to a "
            "folder holding it (pip download torch==2.13.0+cpu --index-url "
            "https://download.pytorch.org/whl/cpu)"
        )
    return found[0]


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """A finished student's copy, with the CPU wheel in wheels/ (a CPU-only room)."""
    work_dir = work.student_copy(LAB, tmp_path_factory.mktemp("ref"))
    wheel = cpu_torch_wheel()
    try:
        os.link(wheel, work_dir / "wheels" / wheel.name)
    except OSError:
        shutil.copy(wheel, work_dir / "wheels" / wheel.name)
    return work_dir


@pytest.fixture(scope="module")
def reference(engine, copy):
    return work.run(engine, LAB, copy)


def test_the_reference_passes_every_check(reference):
    work.all_passed(reference)
    assert [check.name for check in reference.checks] == [check.name for check in LAB.checks]


def test_the_evidence_is_what_a_student_would_see(reference):
    health = work.result(reference, "health").evidence["diffusion"]
    body = json.loads(health["body"])
    assert body["device"] == "cpu"
    assert body["model"] == "tiny"
    assert body["gpu"] is None
    made = work.result(reference, "generate").evidence
    assert made["content_type"] == "image/png"
    assert made["png"] == [128, 96]
    refusals = [c for c in reference.checks if c.kind == "reject"]
    assert [c.evidence["status"] for c in refusals] == [422, 422, 422]
    named = [json.loads(c.evidence["body"])["detail"][0]["loc"][-1] for c in refusals]
    assert named == ["prompt", "steps", "width"]
    assert "multiple of 8" in refusals[2].evidence["body"]
    size = work.result(reference, "size").evidence
    assert size["size_mb"] < 2000
    assert work.result(reference, "non_root").evidence["uids"] == ["10001"]
    graceful = work.result(reference, "graceful_shutdown").evidence
    assert (graceful["status"], graceful["exit_code"]) == (200, 0)


@pytest.fixture(scope="module")
def image(engine, copy, reference):
    """The reference image the checks built (kept by tagging it before they clean up)."""
    tag = "workshop-labs/07-gpu-diffusion-diffusion:test"
    env = checking.local_environment(engine, LAB)
    session = checking.Session(LAB, work.LocalTarget(copy), env)
    built = session.build("diffusion")
    assert built.tag, built.problem
    engine.images.get(built.tag).tag(tag)
    session.cleanup()
    yield tag
    engine.images.remove(tag, force=True)


def run_briefly(engine, tag: str, **environment: str) -> tuple[int, str]:
    container = engine.containers.run(
        tag, detach=True, environment=environment, volumes={"diffusion-models": {"bind": "/models"}}
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            container.reload()
            if container.status == "exited":
                break
            time.sleep(1)
        return container.attrs["State"]["ExitCode"], container.logs().decode()
    finally:
        container.remove(force=True)


def test_without_a_model_it_stops_and_says_where_the_weights_go(engine, image):
    code, logs = run_briefly(engine, image, MODEL_DIR="/models/nothing-here")
    assert code != 0
    assert "no diffusers checkpoint in /models/nothing-here" in logs
    assert "mount the model volume" in logs


def test_told_to_use_a_gpu_it_has_not_got_it_refuses_to_start(engine, image):
    code, logs = run_briefly(engine, image, MODEL_DIR="/models/tiny", DEVICE="cuda")
    assert code != 0
    assert "DEVICE=cuda but CUDA sees no GPU: run the container with --gpus all" in logs


def test_the_weights_are_not_in_the_image_and_downloads_are_off(engine, image):
    config = engine.images.get(image).attrs["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["MODEL_DIR"].startswith("/models/")
    listing = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
         "find / -xdev \\( -name '*.safetensors' -o -name '*.ckpt' \\) | head -3"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert listing.stdout.strip() == ""


def test_the_compose_file_reserves_one_gpu_and_mounts_the_weights_read_only(copy):
    compose = work.LocalTarget(copy).compose[0]
    shown = subprocess.run(
        [compose, "-f", str(copy / "compose.yaml"), "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    service = json.loads(shown.stdout)["services"]["diffusion"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    mount = service["volumes"][0]
    assert (mount["source"], mount["target"], mount["read_only"]) == ("models", "/models", True)


MUTANTS = {
    # the seed never reaches the pipeline: a new picture every time
    "the seed is ignored": (
        "app/pipeline.py",
        'torch.Generator("cpu").manual_seed(seed)',
        'torch.Generator("cpu").manual_seed(time.time_ns() % 2**32)',
        "gave a different picture the second time",
    ),
    # the asked size is dropped: always the pipeline's default
    "the size is ignored": (
        "app/pipeline.py",
        "width=width,\n                height=height,",
        "width=64,\n                height=64,",
        "asked for 128x96, got a 64x64 PNG",
    ),
    # a JPEG where a PNG was promised
    "not a PNG": (
        "app/pipeline.py",
        'image.save(buffer, format="PNG")',
        'image.save(buffer, format="JPEG")',
        "not a PNG picture",
    ),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_generate_fails_a_service_that_gets_it_wrong(engine, copy, tmp_path, mutant):
    """Services not in the repository: the reference with one fault each (only the code
    layer changes, so each builds in seconds from the reference's cache)."""
    file, old, new, expected = MUTANTS[mutant]
    broken = tmp_path / LAB.name
    shutil.copytree(copy, broken, copy_function=os.link)
    source = (copy / file).read_text()
    assert old in source
    (broken / file).unlink()  # a hard link: write a file of its own
    (broken / file).write_text(source.replace(old, new))
    env = checking.local_environment(engine, LAB)
    run = checking.run_lab(LAB, work.LocalTarget(broken), env, only=["generate"])
    result = work.result(run, "generate")
    assert result.status == checking.FAILED, result.message
    assert expected in result.message
