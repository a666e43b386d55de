"""Activity 5: the workflow passes actionlint and logs in by OIDC only; the classroom
push script pushes to the lab cloud's real registry as a student."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.workshop.labs import work
from workshop.labcloud.registry import classroom_registry
from workshop.labs import catalog, checks

LAB = catalog.load("06-registries-ci")
WORKFLOW = LAB.directory / "workflow.yml"


def lint_only(lab: catalog.Lab) -> catalog.Lab:
    return lab.model_copy(update={"checks": [c for c in lab.checks if c.kind == "lint"]})


def test_the_workflow_passes_actionlint_and_a_broken_one_does_not(engine, tmp_path):
    copy = work.student_copy(LAB, tmp_path)
    work.all_passed(work.run(engine, lint_only(LAB), copy))
    workflow = copy / "workflow.yml"
    workflow.write_text(workflow.read_text().replace("${{ github.sha }}", "${{ github.shaa }}"))
    broken = work.result(work.run(engine, lint_only(LAB), copy), "lint")
    assert broken.status == checks.FAILED
    assert "workflow.yml:" in broken.message
    assert 'property "shaa" is not defined' in broken.message


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
def test_push_classroom_pushes_as_a_student(lab_cloud, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))  # the student's login
    state = Path(lab_cloud["state_dir"])
    password = (state / "students/student01/password").read_text().strip()
    address = lab_cloud["registry"]["address"]
    copy = work.student_copy(LAB, tmp_path)
    scripts = LAB.model_copy(update={"checks": [c for c in LAB.checks if c.kind == "script"]})
    run = work.run(
        engine, scripts, copy, registry=address, login="student01", registry_password=password
    )
    work.all_passed(run)
    lines = "\n".join(work.result(run, "script").evidence["last_lines"])
    match = re.search(
        rf"pushed {re.escape(address)}/student01/classifier:(\S+)@(sha256:\w+)", lines
    )
    assert match, lines
    registry = classroom_registry(lab_cloud["cohort"])
    assert registry.manifest_digest("student01/classifier", match.group(1)) == match.group(2)
    assert password not in lines
    config = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert address in config["auths"]
    registry.delete_repository("student01/classifier", force=True)
