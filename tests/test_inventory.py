"""The example inventory for real cohorts stays in step with what the lab cloud writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.conftest import REPO
from workshop.labcloud import cloud, spec

EXAMPLE = REPO / "inventory" / "example-cohort.yml"


def test_example_inventory_parses_with_ansible():
    result = subprocess.run(
        [str(REPO / ".venv/bin/ansible-inventory"), "-i", str(EXAMPLE), "--list"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    parsed = json.loads(result.stdout)
    assert parsed["student_vms"]["hosts"] == ["student-01", "student-02", "student-03"]


def test_example_sets_every_variable_the_lab_cloud_sets(tmp_path):
    files = spec.CohortPaths(Path(tmp_path))
    vm = spec.VmStatus("ws-x-student-01", "student-01", "10.213.0.11", "abc")
    student = spec.roster(1)[0]
    key = files.student_dir(student.login) / "id_ed25519.pub"
    key.parent.mkdir(parents=True)
    key.write_text("ssh-ed25519 AAAA student01@x\n")
    rendered = cloud.render_inventory("x", files, [vm], "10.213.0.2:5000", [student], ["r@d"])
    generated = yaml.safe_load(rendered)
    example = yaml.safe_load(EXAMPLE.read_text())
    lab_only: set[str] = set()
    assert set(generated["all"]["vars"]) - lab_only == set(example["all"]["vars"])
    assert set(generated["all"]["children"]) == set(example["all"]["children"])
    host = generated["all"]["children"]["student_vms"]["hosts"]["student-01"]
    example_host = example["all"]["children"]["student_vms"]["hosts"]["student-01"]
    assert set(host) == set(example_host)
    assert set(host["workshop_students"][0]) == set(example_host["workshop_students"][0])
