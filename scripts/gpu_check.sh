#!/bin/sh
# Activity 4 and the GPU fact on a real NVIDIA GPU, in one prepared run (the `device`
# tool lends a machine with one: no Docker, no network, torch with CUDA already there).
# Missing Python packages travel as cp312 wheels in .cache/gpu-wheels (`make gpu-wheels`
# fetches them; name the folder in the device tool's `carry`). Results under $OUT.
#   device: sh scripts/gpu_check.sh      (timeout 480 s leaves room for a rerun)
set -eu
OUT=${OUT:-/tmp/gpu-check}
WHEELS=${GPU_WHEELS:-.cache/gpu-wheels}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -d "$WHEELS" ]; then
  # diffusers without its pins (the machine's huggingface_hub and transformers serve it).
  "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" --no-deps diffusers regex
  "$PYTHON" -m pip install -q --no-index --find-links "$WHEELS" fastapi uvicorn
fi
sh scripts/gpu_device_check.sh >"$OUT/gpu-device-check.log" 2>&1 || echo "gpu_device_check failed: see its log"
"$PYTHON" scripts/gpu_diffusion_check.py --out "$OUT/diffusion.json" 2>"$OUT/diffusion.log"
