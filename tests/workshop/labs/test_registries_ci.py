"""Activity 5: the workflow passes actionlint and logs in by OIDC only; the classroom
push script pushes to the lab cloud's real registry as a student."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.workshop.labs import work
from workshop import checking
from workshop.checking.kinds.files import OidcOnly
from workshop.labcloud.registry import classroom_registry
from workshop.labs import catalog

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
    assert broken.status == checking.FAILED
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


def one_file_image(engine, repository: str, data: bytes) -> None:
    """An image of one file (nothing to pull); other data, another image."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("build.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    engine.api.import_image_from_data(buffer.getvalue(), repository=repository, tag="1")


def push_tags(engine, image: str, repository: str, tags: list[str], auth: dict) -> None:
    for tag in tags:
        engine.images.get(image).tag(repository, tag)
        stream = engine.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
        assert not [item["error"] for item in stream if "error" in item]
        engine.images.remove(f"{repository}:{tag}")


@pytest.mark.labcloud
def test_registry_tags_wants_every_tag_on_one_image(lab_cloud, engine, tmp_path, monkeypatch):
    """Part 3: 1.4.2, 1.4, 1 and latest of one build pass; latest moved to another image,
    or a tag missing, fails naming it. Read as the student, with their login."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    state = Path(lab_cloud["state_dir"])
    password = (state / "students/student02/password").read_text().strip()
    address = lab_cloud["registry"]["address"]
    login = subprocess.run(
        ["docker", "login", address, "--username", "student02", "--password-stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=False,
    )
    assert login.returncode == 0, login.stderr
    repository = f"{address}/student02/classifier"
    one_file_image(engine, f"{repository}-one", b"one build\n")
    one_file_image(engine, f"{repository}-other", b"another build\n")
    auth = {"username": "student02", "password": password}
    only = LAB.model_copy(update={"checks": [c for c in LAB.checks if c.kind == "registry_tags"]})
    copy = work.student_copy(LAB, tmp_path)

    def judged() -> checking.CheckResult:
        run = work.run(
            engine, only, copy, registry=address, login="student02", registry_password=password
        )
        return work.result(run, "registry_tags")

    try:
        push_tags(engine, f"{repository}-one:1", repository, ["1.4.2", "1.4", "1"], auth)
        missing = judged()
        assert missing.status == checking.FAILED
        assert "has no tag latest" in missing.message
        push_tags(engine, f"{repository}-one:1", repository, ["latest"], auth)
        assert judged().status == checking.PASSED
        push_tags(engine, f"{repository}-other:1", repository, ["latest"], auth)
        moved = judged()
        assert moved.status == checking.FAILED, moved.message
        assert "latest is another image than 1.4.2" in moved.message
    finally:
        classroom_registry(lab_cloud["cohort"]).delete_repository(
            "student02/classifier", force=True
        )
        for name in (f"{repository}-one:1", f"{repository}-other:1"):
            if engine.images.list(name):
                engine.images.remove(name, force=True)


OIDC = OidcOnly(name="oidc", kind="oidc_only", file="workflow.yml")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (None, "logs in to the three clouds by OIDC only"),
        (
            (
                "role-to-assume: ${{ env.AWS_ROLE_ARN }}",
                "aws-access-key-id: ${{ secrets.AWS_KEY }}",
            ),
            "configure-aws-credentials is given aws-access-key-id",
        ),
        (
            (
                "workload_identity_provider: ${{ env.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
                "credentials_json: ${{ secrets.GCP_KEY }}",
            ),
            "google-github-actions/auth is given credentials_json",
        ),
        (
            ("client-id: ${{ env.AZURE_CLIENT_ID }}", "creds: ${{ secrets.AZURE_CREDS }}"),
            "azure/login is given creds",
        ),
        (("  id-token: write  # lets", "  # id-token: write  # lets"), "lacks permissions"),
        (
            (
                "password: ${{ steps.gcp.outputs.access_token }}",
                "password: ${{ secrets.GAR_PASSWORD }}",
            ),
            "takes a password from a secret",
        ),
    ],
    ids=[
        "reference",
        "AWS access key",
        "GCP JSON key",
        "Azure secret",
        "no id-token",
        "a registry password",
    ],
)
def test_oidc_only_fails_every_stored_key(engine, tmp_path, change, reason):
    copy = work.student_copy(LAB, tmp_path)
    workflow = copy / "workflow.yml"
    if change:
        assert change[0] in workflow.read_text(), change[0]
        workflow.write_text(workflow.read_text().replace(change[0], change[1]))
    only = LAB.model_copy(update={"checks": [OIDC], "uses": []})
    result = work.result(work.run(engine, only, copy), "oidc_only")
    assert result.status == (checking.PASSED if change is None else checking.FAILED), result.message
    assert reason in result.message
