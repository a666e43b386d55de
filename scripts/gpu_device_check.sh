#!/bin/sh
# The GPU checks that need a real NVIDIA GPU, in one short run (the `device` tool lends a
# machine with one, no Docker and no network): the preflight role's GPU fact next to
# nvidia-smi's own answer, and the test that compares them. Results under $OUT.
#   device: run `sh scripts/gpu_device_check.sh` (timeout 120 s is plenty)
set -eu
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
sed 's/{{ ansible_managed }}/device check/' roles/preflight/templates/workshop_gpu.fact.j2 \
  >"$OUT/workshop_gpu.fact"
python3 "$OUT/workshop_gpu.fact" | tee "$OUT/gpu-fact.json"
echo
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/nvidia-smi.csv"
nvidia-smi | grep -o 'CUDA Version: [0-9.]*' | tee "$OUT/cuda-banner.txt"
if python3 -c 'import pytest' 2>/dev/null; then
  python3 -m pytest -q -p no:cacheprovider --noconftest \
    tests/roles/test_gpu_fact.py -k real_gpu 2>&1 | tee "$OUT/pytest.txt"
else
  echo "pytest is not installed here: compare gpu-fact.json with the two files above" \
    | tee "$OUT/pytest.txt"
fi
# The nvidia_toolkit role rewrites the CDI spec when the GPU fact's driver version is not
# in it: check that a spec generated here names the driver's version (needs nvidia-ctk;
# reported, never fatal, where the toolkit is not installed).
if command -v nvidia-ctk >/dev/null 2>&1; then
  driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
  nvidia-ctk --version | head -1 | tee "$OUT/nvidia-ctk.txt"
  if nvidia-ctk cdi generate --output="$OUT/nvidia.yaml" >"$OUT/cdi-generate.log" 2>&1; then
    printf 'driver %s named in the CDI spec %s times\n' "$driver" \
      "$(grep -c -F "$driver" "$OUT/nvidia.yaml")" | tee -a "$OUT/nvidia-ctk.txt"
  else
    echo "nvidia-ctk cdi generate failed: see cdi-generate.log" | tee -a "$OUT/nvidia-ctk.txt"
  fi
else
  echo "no nvidia-ctk here: the CDI check needs the NVIDIA Container Toolkit" \
    | tee "$OUT/nvidia-ctk.txt"
fi
