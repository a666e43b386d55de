"""The cohort workflow: repositories and credentials per student in every registry, written
0600 to the login cards, and removed again (idempotently)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_workshop
from tests.registries.test_push import three_registries
from workshop import registry_access as cohort
from workshop.labcloud.registry import classroom_registry

pytestmark = pytest.mark.labcloud


def cards(lab_cloud) -> dict[str, dict]:
    state = Path(lab_cloud["state_dir"])
    found = {}
    for path in sorted(state.glob("students/*/registries.json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        found[path.parent.name] = json.loads(path.read_text())
    return found


def test_create_and_delete_across_every_registry(lab_cloud, aws, gcp, azure):
    name = lab_cloud["cohort"]
    registries = three_registries(aws, gcp, azure)
    registries["gcr"].settings.student_member = "user:{student}@example.edu"
    registries["local"] = classroom_registry(name)

    results = cohort.create(name, registries, ["classifier"])
    assert [r.error for r in results] == [None] * 8
    assert {(r.student, r.registry) for r in results} == {
        (s, r) for s in ("student01", "student02") for r in ("ecr", "gcr", "acr", "local")
    }
    on_cards = cards(lab_cloud)
    assert sorted(on_cards) == ["student01", "student02"]
    card = on_cards["student02"]
    assert sorted(card) == ["acr", "ecr", "gcr", "local"]
    assert card["acr"]["repositories"] == [f"{azure.login_server}/{name}/student02/classifier"]
    assert card["acr"]["password"]
    assert card["ecr"]["aws_secret_access_key"]
    assert card["gcr"]["member"] == "user:student02@example.edu"
    assert card["local"]["username"] == "student02"
    assert cohort.recorded_registries(name) == ["acr", "ecr", "gcr", "local"]
    assert f"{name}-student02" in azure.tokens

    # A second create is safe: same repositories, fresh credentials.
    again = cohort.create(name, registries, ["classifier"])
    assert [r.error for r in again] == [None] * 8

    cleaned = {c.registry: c for c in cohort.delete(name, registries)}
    assert all(c.ok for c in cleaned.values())
    assert sorted(cleaned["ecr"].credentials) == [f"{name}-student01", f"{name}-student02"]
    assert sorted(cleaned["acr"].credentials) == [f"{name}-student01", f"{name}-student02"]
    assert not [token for token in azure.tokens if token.startswith(name)]
    assert registries["ecr"].list_repositories(f"{name}/") == []
    assert cards(lab_cloud) == {}
    assert cohort.recorded_registries(name) == []

    # Idempotent: nothing left, nothing fails.
    assert all(c.ok and not c.repositories for c in cohort.delete(name, registries))


def test_one_registry_failing_leaves_the_others_done(lab_cloud, aws, gcp, azure):
    name = lab_cloud["cohort"]
    registries = three_registries(aws, gcp, azure)
    registries["gcr"].settings.student_member = None  # gcr cannot grant: it fails alone
    results = cohort.create(name, {k: registries[k] for k in ("ecr", "gcr")}, ["app"])
    by = {(r.registry, r.ok) for r in results}
    assert by == {("ecr", True), ("gcr", False)}
    assert all("gcr.student_member" in r.error for r in results if r.registry == "gcr")
    assert sorted(cards(lab_cloud)["student01"]) == ["ecr"]
    cohort.delete(name, {k: registries[k] for k in ("ecr", "gcr")})
    assert cards(lab_cloud) == {}


def test_the_cli_creates_and_deletes(lab_cloud, aws, gcp, tmp_path):
    name = lab_cloud["cohort"]
    config_file = tmp_path / "registries.yml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "ecr": {"region": "eu-west-1", "endpoint_url": aws["endpoint"]},
                "student_repositories": ["classifier", "gateway"],
            }
        )
    )
    created = run_workshop(
        "registries",
        "create",
        "--cohort",
        name,
        "--registries",
        "ecr,local",
        "--config",
        str(config_file),
        "--json",
    )
    assert created.returncode == 0, created.stderr
    rows = json.loads(created.stdout)
    assert len(rows) == 4
    assert all(row["error"] is None for row in rows)
    assert {tuple(row["repositories"]) for row in rows if row["student"] == "student01"} == {
        (f"{name}/student01/classifier", f"{name}/student01/gateway")
    }
    secrets = [cards(lab_cloud)["student01"]["ecr"]["aws_secret_access_key"]]
    secrets.append(cards(lab_cloud)["student01"]["local"]["password"])
    for secret in secrets:
        assert secret not in created.stdout + created.stderr

    table = run_workshop("registries", "delete", "--cohort", name, "--config", str(config_file))
    assert table.returncode == 0, table.stderr
    assert "Registry cleanup" in table.stdout
    assert cards(lab_cloud) == {}
    nothing = run_workshop("registries", "delete", "--cohort", name, "--config", str(config_file))
    assert nothing.returncode == 0
    assert "nothing to delete" in nothing.stdout

    unknown = run_workshop("registries", "create", "--cohort", name, "--registries", "ecs")
    assert unknown.returncode == 2
    assert "unknown registry 'ecs'" in unknown.stderr
    missing = run_workshop("registries", "create", "--cohort", "nowhere")
    assert missing.returncode == 2
    assert "cohort 'nowhere' has no roster here" in missing.stderr


def test_ci_trust_for_each_students_repository_in_every_cloud(lab_cloud, aws, gcp, azure):
    """--ci github:acme-ml/{login}-docker: every student's own repository is trusted in each
    cloud, the variables land on the card and in github-variables.sh (no key anywhere);
    delete removes the trust with the repositories."""
    name = lab_cloud["cohort"]
    registries = three_registries(aws, gcp, azure)
    registries["gcr"].settings.student_member = "user:{student}@example.edu"
    registries["local"] = classroom_registry(name)

    results = cohort.create(name, registries, ["classifier"], "github:acme-ml/{login}-docker")
    assert [r.error for r in results] == [None] * 8
    by = {(r.student, r.registry): r for r in results}
    assert by["student02", "ecr"].ci == "acme-ml/student02-docker"
    assert by["student02", "local"].ci == ""  # runners cannot reach it: nothing to trust
    assert by["student01", "acr"].variables["ACR_REPOSITORY"] == f"{name}/student01/classifier"
    card = cards(lab_cloud)["student01"]
    assert card["gcr"]["ci"]["github"] == "acme-ml/student01-docker"
    script = Path(lab_cloud["state_dir"]) / "students/student01/github-variables.sh"
    text = script.read_text()
    assert stat.S_IMODE(script.stat().st_mode) == 0o600
    for key in ("AWS_ROLE_ARN", "GCP_WORKLOAD_IDENTITY_PROVIDER", "AZURE_CLIENT_ID", "ACR_NAME"):
        assert f"gh variable set {key} --repo acme-ml/student01-docker --body " in text
    assert "student02-docker" not in text
    assert card["ecr"]["aws_secret_access_key"] not in text, "variables only, no credential"

    cleaned = {c.registry: c for c in cohort.delete(name, registries)}
    assert all(c.ok for c in cleaned.values())
    assert cleaned["ecr"].ci == sorted(
        [
            f"{name}-student01-github",
            f"{name}-student02-github",
            "oidc-provider/token.actions.githubusercontent.com",
        ]
    )
    assert len(cleaned["gcr"].ci) == 5  # two accounts, two providers, the pool
    assert cleaned["acr"].ci == [f"workshop-ci-{name}-student01", f"workshop-ci-{name}-student02"]
    assert not script.exists()
    assert azure.applications == {}


def test_the_cli_refuses_a_malformed_ci_repository_before_touching_a_registry(lab_cloud):
    name = lab_cloud["cohort"]
    for bad in ("acme-ml/repo", "github:acme-ml/{student}-docker", "github:acme ml/repo"):
        refused = run_workshop("registries", "create", "--cohort", name, "--ci", bad)
        assert refused.returncode == 2, refused.stdout
        assert "github:" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert cards(lab_cloud) == {}
