"""The verify stage's GPU column on a GPU host, which no lab VM here has: its result
template rendered by Ansible itself (a local play) from what the GPU tasks register on a
real GPU host, with and without the classroom's CUDA image (Activity 4's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    verify_roster: []
    verify_expected_labs: [07-gpu-diffusion]
    verify_expected_images: [registry:5000/library/python:3.11-slim]
    verify_test_image: registry:5000/library/python:3.11-slim
    verify_gpu_workload_image: {workload!r}
    verify_gpu_image: {image!r}
    ansible_local:
      workshop_gpu: {{driver_version: "580.159.04", cuda_max: "13.0"}}
    _verify_gpu_count: 1
    _verify_engine: {{rc: 0, stdout: "28.2.2"}}
    _verify_compose: {{rc: 0, stdout: "v2.37.1"}}
    _verify_buildx: {{rc: 0, stdout: "github.com/docker/buildx v0.24.0 abc"}}
    _verify_run: {{rc: 0}}
    _verify_images: {{stdout_lines: []}}
    _verify_gpu: {{rc: 0, stdout_lines: ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)"]}}
    _verify_gpu_workload: {registered}
  tasks:
    - name: Render the result.
      ansible.builtin.copy:
        dest: {out}
        content: "{{{{ lookup('ansible.builtin.template', '{template}') }}}}"
        mode: "0600"
"""


def render(
    tmp_path: Path,
    workload: str,
    registered: dict,
    image: str = "registry:5000/library/python:3.11-slim",
) -> dict:
    out = tmp_path / "verify.json"
    play = tmp_path / "play.yml"
    play.write_text(
        PLAY.format(
            workload=workload,
            image=image,
            registered=json.dumps(registered),
            out=out,
            template=REPO / "roles/verify/templates/verify.json.j2",
        )
    )
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        cwd=tmp_path,
    )
    return json.loads(out.read_text())


@pytest.mark.parametrize(
    ("workload", "registered", "gpu", "problem"),
    [
        (
            "",
            {"skipped": True},
            "ok: 1 GPU(s) in a container, driver 580.159.04 (CUDA <= 13.0)",
            None,
        ),
        (
            "registry:5000/classroom/text-to-image:1",
            {"rc": 0, "stdout": "NVIDIA H100 80GB HBM3 13.0\n"},
            "; torch on NVIDIA H100 80GB HBM3 13.0",
            None,
        ),
        (
            "registry:5000/classroom/text-to-image:1",
            {"rc": 1, "stderr": "RuntimeError: CUDA driver version is insufficient"},
            "ok: 1 GPU(s)",
            "no CUDA program runs on the GPU from registry:5000/classroom/text-to-image:1: "
            "RuntimeError: CUDA driver version is insufficient",
        ),
    ],
)
def test_the_gpu_column_names_what_a_cuda_program_sees(
    tmp_path, workload, registered, gpu, problem
):
    result = render(tmp_path, workload, registered)
    assert gpu in result["gpu"]
    assert result["gpu_count"] == 1
    if problem:
        assert result["problems"] == [problem]
        assert result["result"] == "failed"
    else:
        assert result["problems"] == []
        assert result["result"] == "ok"


def test_without_a_gpu_test_image_the_column_says_so_instead_of_gpu_not_visible(tmp_path):
    """The example inventory preloads no python base: nothing to run nvidia-smi in. The
    table names the missing image; it used to run `docker run --gpus all` of nothing and
    call every GPU host "GPU not visible"."""
    result = render(tmp_path, "", {"skipped": True}, image="")
    assert result["gpu"] == "not checked: no GPU test image"
    assert result["problems"] == [
        "no GPU test image to run nvidia-smi in: preload the python base (workshop prepare) "
        "or set verify_gpu_image"
    ]
    assert "GPU not visible" not in json.dumps(result)
