"""The diffusion pipeline: loaded once from MODEL_DIR, on CUDA when there is a GPU.

Any diffusers text-to-image checkpoint saved with ``save_pretrained`` loads here: SD-Turbo
for the class (README), or the tiny random one ``python -m app.tiny`` writes for tests
and CPU-only rooms. One generation runs at a time (a GPU has one memory); the lock keeps
a second request waiting instead of running out of memory.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoPipelineForText2Image

log = logging.getLogger("diffusion")


class ModelMissing(RuntimeError):
    """MODEL_DIR holds no diffusers checkpoint."""


def pick_device(wanted: str) -> str:
    """``auto``: the first GPU when CUDA sees one, else the CPU (slow, and said so)."""
    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"DEVICE={wanted} but CUDA sees no GPU: run the container with --gpus all "
            "(and the NVIDIA Container Toolkit on the host), or DEVICE=cpu"
        )
    return wanted


@dataclass
class Generated:
    png: bytes
    seconds: float


class Diffusion:
    def __init__(self, model_dir: Path, device: str) -> None:
        if not (model_dir / "model_index.json").is_file():
            raise ModelMissing(
                f"no diffusers checkpoint in {model_dir} (model_index.json is missing): mount "
                "the model volume there (README, 'The weights') or set MODEL_DIR"
            )
        self.model_dir = model_dir
        self.device = pick_device(device)
        # Half precision on the GPU (half the memory, faster); the CPU needs float32.
        dtype = torch.float16 if self.device.startswith("cuda") else torch.float32
        started = time.perf_counter()
        # A checkpoint fetched as its fp16 files only (README) is loaded as that variant.
        variant = "fp16" if any(model_dir.glob("*/*.fp16.safetensors")) else None
        self.pipe = AutoPipelineForText2Image.from_pretrained(
            str(model_dir), torch_dtype=dtype, variant=variant
        )
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.load_seconds = time.perf_counter() - started
        self._lock = threading.Lock()
        log.info("%s loaded on %s in %.1fs", model_dir.name, self.device, self.load_seconds)

    def gpu(self) -> dict[str, object]:
        """The GPU the service runs on and its memory, or ``None`` values on the CPU."""
        if not self.device.startswith("cuda"):
            return {"gpu": None, "gpu_memory_total_mb": None, "gpu_memory_used_mb": None}
        index = torch.device(self.device).index or 0
        free, total = torch.cuda.mem_get_info(index)
        return {
            "gpu": torch.cuda.get_device_name(index),
            "gpu_memory_total_mb": round(total / 2**20),
            "gpu_memory_used_mb": round((total - free) / 2**20),
        }

    def generate(self, prompt: str, steps: int, seed: int, width: int, height: int) -> Generated:
        started = time.perf_counter()
        with self._lock:
            # The generator on the CPU: the same seed gives the same noise on any device.
            generator = torch.Generator("cpu").manual_seed(seed)
            image = self.pipe(
                prompt,
                num_inference_steps=steps,
                # Turbo models are trained without classifier-free guidance.
                guidance_scale=0.0,
                width=width,
                height=height,
                generator=generator,
            ).images[0]
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return Generated(buffer.getvalue(), time.perf_counter() - started)
