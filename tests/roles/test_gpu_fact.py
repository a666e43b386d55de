"""The GPU fact's reading of nvidia-smi and its driver -> CUDA mapping. nvidia-smi exists
only on GPU hosts: here a script on PATH prints what the real one prints for
`--query-gpu=name,driver_version --format=csv,noheader` (the format is NVIDIA's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

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
