"""The GPU fact's reading of nvidia-smi and its driver -> CUDA mapping. nvidia-smi exists
only on GPU hosts: here a script on PATH prints what the real one prints for
`--query-gpu=name,driver_version --format=csv,noheader` (the format is NVIDIA's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Self-contained (no conftest): scripts/gpu_device_check.sh runs it on a GPU machine.
REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles/preflight/templates/workshop_gpu.fact.j2"


def fact(tmp_path, smi_output: str | None) -> dict:
    script = tmp_path / "workshop_gpu.fact"
    script.write_text(TEMPLATE.read_text().replace("{{ ansible_managed }}", "test"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if smi_output is not None:
        smi = bin_dir / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\nprintf '{smi_output}'\n")
        smi.chmod(0o755)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bin_dir)},
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("driver", "cuda"),
    [
        ("580.159.04", "13.0"),
        ("570.133.20", "12.8"),
        ("550.163.01", "12.4"),
        ("535.104.05", "12.2"),
        ("525.60.13", "12.0"),
        ("470.256.02", "11.4"),
        ("418.67", None),
    ],
)
def test_the_driver_says_which_cuda_the_host_runs(tmp_path, driver, cuda):
    found = fact(tmp_path, f"NVIDIA H100 80GB HBM3, {driver}\\nNVIDIA H100 80GB HBM3, {driver}\\n")
    assert found == {
        "count": 2,
        "names": ["NVIDIA H100 80GB HBM3"] * 2,
        "driver_version": driver,
        "cuda_max": cuda,
        "source": "nvidia-smi",
    }


def test_without_nvidia_smi_this_host_has_no_gpu(tmp_path):
    assert fact(tmp_path, None) == {
        "count": 0,
        "names": [],
        "driver_version": None,
        "cuda_max": None,
        "source": "none",
    }


def smi(*args: str) -> str:
    return subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(
    not any((Path(p) / "nvidia-smi").exists() for p in os.environ["PATH"].split(":")),
    reason="no nvidia-smi here: the GPU fact is checked on a real GPU by "
    "scripts/gpu_device_check.sh (the device tool) or on a GPU VM",
)
def test_on_a_real_gpu_the_fact_agrees_with_nvidia_smi(tmp_path):
    """The fact on a real GPU host: the GPUs and driver nvidia-smi lists, and a CUDA
    version no newer than the one nvidia-smi's banner says the driver supports."""
    script = tmp_path / "workshop_gpu.fact"
    script.write_text(TEMPLATE.read_text().replace("{{ ansible_managed }}", "test"))
    found = json.loads(
        subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, check=True
        ).stdout
    )
    rows = [
        line.split(", ")
        for line in smi("--query-gpu=name,driver_version", "--format=csv,noheader").splitlines()
    ]
    assert found["count"] == len(rows)
    assert found["names"] == [row[0] for row in rows]
    assert found["driver_version"] == rows[0][1]
    banner = re.search(r"CUDA Version: (\d+)\.(\d+)", smi())
    assert banner, "nvidia-smi printed no CUDA version"
    assert found["cuda_max"] is not None
    major, minor = (int(part) for part in found["cuda_max"].split("."))
    assert (major, minor) <= (int(banner.group(1)), int(banner.group(2)))
