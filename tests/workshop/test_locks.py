"""``workshop.locks``: a second holder of the same lock waits for the first; other names do
not wait (two builds of the same image never run at once, different images do)."""

from __future__ import annotations

import threading
import time

from workshop import locks


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
