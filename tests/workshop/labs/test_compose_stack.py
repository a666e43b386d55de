"""Activity 3: the reference compose file, as a student who finished has it, judged by the
lab's checks with Compose v2: up --wait healthy, a prediction through the gateway, the
Redis cache, the PostgreSQL log, three model replicas; nothing left behind."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.workshop.labs import work
from workshop import checking
from workshop.labs import catalog

LAB = catalog.load("05-compose-stack")


@pytest.fixture(scope="module")
def reference(engine, tmp_path_factory):
    return work.run(engine, LAB, work.student_copy(LAB, tmp_path_factory.mktemp("ref")))


def test_the_reference_passes_every_check(reference):
    work.all_passed(reference)


def test_the_cache_the_log_and_the_replicas(reference):
    assert work.result(reference, "cache_hit").evidence["x_cache"][1] == "hit"
    rows = work.result(reference, "database_row").evidence
    assert rows["rows_after"] == rows["rows_before"] + 1
    assert len(work.result(reference, "replicas").evidence["instances"]) > 1


def test_nothing_of_the_check_is_left(engine, reference):
    prefix = "ws-check-"
    assert not [c.name for c in engine.containers.list(all=True) if c.name.startswith(prefix)]
    assert not [v.name for v in engine.volumes.list() if v.name.startswith(prefix)]
    assert not [n.name for n in engine.networks.list() if n.name.startswith(prefix)]


def test_the_secret_the_limits_and_the_debug_profile(reference):
    secret = work.result(reference, "compose_secret").evidence
    assert secret["in_environment"] == []
    assert "db: /run/secrets/db_password" in secret["secrets_mounted"]
    limits = work.result(reference, "resource_limits").evidence["limits"]
    assert {(limit["memory_mb"], limit["cpus"]) for limit in limits} == {(1024, 1.0)}
    assert "psql" not in work.result(reference, "compose_profile").evidence["services"]


def test_a_missing_password_file_is_named(engine, tmp_path):
    copy = work.student_copy(LAB, tmp_path)
    (copy / "db_password.txt").unlink()
    run = work.run(engine, LAB.model_copy(update={"checks": LAB.checks[:1]}), copy)
    assert run.status == checking.FAILED
    assert "db_password.txt" in work.result(run, "health").message


REPAIRED = (REPO / "labs/05-compose-stack/broken/compose.yaml").read_text()
REPAIR = LAB.model_copy(update={"checks": [c for c in LAB.checks if c.kind == "compose_up"]})


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        (None, "worker is exited (exit code 1)"),  # as delivered: three mistakes
        (REPAIRED.replace('"-p", "6379"', '"-p", "6380"'), "health check says unhealthy"),
        (
            REPAIRED.replace('test: ["CMD", "test", "-f", "/run/worker-ready"]', "disable: true"),
            "worker has no health check",
        ),
        (
            REPAIRED.replace("REDIS_HOST: cache", "REDIS_HOST: redis").replace(
                "    depends_on:\n      cache:\n        condition: service_healthy\n", ""
            ),
            "worker is exited",
        ),
    ],
    ids=["as-delivered", "health-check-port", "health-check-removed", "wrong-host"],
)
def test_a_stack_not_repaired_is_named(engine, tmp_path, broken, named):
    copy = work.student_copy(LAB, tmp_path, solution=False)
    if broken is not None:
        (copy / "broken/compose.yaml").write_text(broken)
    run = work.run(engine, REPAIR, copy)
    result = work.result(run, "compose_up")
    assert result.status == checking.FAILED, result.message
    assert named in result.message
    left = engine.containers.list(all=True, filters={"label": "com.docker.compose.service=worker"})
    assert not [c.name for c in left if c.name.startswith("ws-check-")], "taken down after"
