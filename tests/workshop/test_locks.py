"""``workshop.locks``: a second holder of the same lock waits for the first; other names do
not wait (two builds of the same image never run at once, different images do)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from workshop import locks
from workshop.errors import WorkshopError


def hold(name: str, seconds: float, log: list[tuple[str, str, float]], who: str) -> None:
    with locks.exclusive(name):
        log.append((who, "in", time.monotonic()))
        time.sleep(seconds)
        log.append((who, "out", time.monotonic()))


def test_the_same_name_waits_and_another_name_does_not():
    log: list[tuple[str, str, float]] = []
    first = threading.Thread(target=hold, args=("image x", 0.5, log, "first"))
    first.start()
    time.sleep(0.1)
    same = threading.Thread(target=hold, args=("image x", 0.0, log, "same"))
    other = threading.Thread(target=hold, args=("image/y", 0.0, log, "other"))
    same.start()
    other.start()
    for thread in (first, same, other):
        thread.join(timeout=10)
    at = {(who, what): when for who, what, when in log}
    assert at[("same", "in")] >= at[("first", "out")]
    assert at[("other", "in")] < at[("first", "out")]


@pytest.mark.parametrize("planted", ["another user's directory", "a link", "open to all"])
def test_a_lock_directory_someone_else_planted_is_refused(tmp_path, monkeypatch, planted):
    monkeypatch.setattr(locks.tempfile, "gettempdir", lambda: str(tmp_path))
    directory = tmp_path / f"workshop-locks-{os.geteuid()}"
    if planted == "a link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        directory.symlink_to(tmp_path / "elsewhere")
    else:
        directory.mkdir(mode=0o700)
        if planted == "open to all":
            directory.chmod(0o777)
        else:
            os.chown(directory, 65534, 65534)  # nobody
    with pytest.raises(WorkshopError, match="not a private directory"), locks.exclusive("x"):
        pass


def test_a_link_planted_as_a_lock_file_is_not_followed(tmp_path, monkeypatch):
    monkeypatch.setattr(locks.tempfile, "gettempdir", lambda: str(tmp_path))
    with locks.exclusive("warm up"):
        pass
    target = tmp_path / "victim"
    target.write_text("intact")
    (tmp_path / f"workshop-locks-{os.geteuid()}" / "x.lock").symlink_to(target)
    with pytest.raises(OSError, match="symbolic links"), locks.exclusive("x"):
        pass
    assert target.read_text() == "intact"
