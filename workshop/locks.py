"""One process at a time on this machine for work that two processes must not do at once.

Building an image or a virtual environment "unless it exists" is check-then-build: two
``workshop`` commands (or test processes) started together would both find it missing
and build it at the same time, into the same directory or tag. ``exclusive(name)`` holds
an advisory lock (``flock``) on a file named after the work; the second process waits,
then finds the work done. Locks go away with the process that held them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _directory() -> Path:
    directory = Path(tempfile.gettempdir()) / f"workshop-locks-{os.geteuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Hold the machine-wide lock ``name`` (any text: it is made a file name)."""
    path = _directory() / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:200] + ".lock")
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
