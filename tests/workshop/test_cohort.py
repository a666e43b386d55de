"""A cohort's inventory is read at the edge: a student login that is not a Linux login
(shell syntax, a path, upper case) is refused naming the inventory, the host and the
entry, before it can reach an SSH command line, a sudo -u or a state path."""

from __future__ import annotations

import pytest
import yaml

from workshop import cohort
from workshop.errors import WorkshopError


def inventory(tmp_path, login: str):
    path = tmp_path / "inventory.yml"
    hosts = {"vm-1": {"ansible_host": "192.0.2.10", "workshop_students": [{"login": login}]}}
    path.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"workshop_state_dir": str(tmp_path / "state")},
                    "children": {"student_vms": {"hosts": hosts}},
                }
            },
            sort_keys=False,
        )
    )
    return path


@pytest.mark.parametrize(
    "login", ["student01; rm -rf ~", "../../etc/passwd", "$(id)", "Student01", "-oProxy", ""]
)
def test_a_login_that_is_not_a_linux_login_is_refused(tmp_path, login):
    with pytest.raises(WorkshopError) as refused:
        cohort.load("x", inventory(tmp_path, login))
    assert "vm-1" in str(refused.value)
    assert "no valid login" in str(refused.value)


def test_a_linux_login_is_read(tmp_path):
    found = cohort.load("x", inventory(tmp_path, "student_07"))
    assert [s.login for s in found.students] == ["student_07"]
