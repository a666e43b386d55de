"""Lesson 04: the reference script, run as the lab's script checks run a student's."""

from __future__ import annotations

from tests.workshop.labs import work
from workshop import checking
from workshop.labs import catalog

LAB = catalog.load("04-networking-volumes")


def test_the_reference_script_shows_networks_a_shared_volume_and_a_bind_mount(engine, tmp_path):
    """Each script check's expected lines (name resolution, the shared volume, the host and
    none networks, the live read-only bind mount) were printed: all_passed."""
    run = work.run(engine, LAB, work.student_copy(LAB, tmp_path))
    work.all_passed(run)
    assert len(run.checks) == 4
    output = "\n".join(work.result(run, "script").evidence["last_lines"])
    assert "bind mount: read-only inside" in output
    assert output.endswith("ok")
    # The script cleaned up after itself (PREFIX is the check's).
    assert not engine.containers.list(all=True, filters={"name": "ws-check-"})
    assert not engine.volumes.list(filters={"name": "ws-check-"})


def test_a_student_who_wrote_no_script_has_not_started(engine, tmp_path):
    run = work.run(engine, LAB, work.student_copy(LAB, tmp_path, solution=False))
    assert run.status == checking.NOT_STARTED
    assert "solution.sh is missing" in run.checks[0].message
