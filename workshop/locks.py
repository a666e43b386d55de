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
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from workshop.errors import WorkshopError


def _directory() -> Path:
    """The lock directory in /tmp, this user's own: another local user may have made the
    name first (a directory of theirs, a link) to hold or swap the locks; that is refused."""
    directory = Path(tempfile.gettempdir()) / f"workshop-locks-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    found = os.lstat(directory)
    if (
        not stat.S_ISDIR(found.st_mode)
        or found.st_uid != os.geteuid()
        or stat.S_IMODE(found.st_mode) & 0o077
    ):
        raise WorkshopError(
            f"{directory} is not a private directory of this user's (a link, another "
            "user's, or open to others): remove it, and the kit makes its own"
        )
    return directory


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Hold the machine-wide lock ``name`` (any text: it is made a file name)."""
    path = _directory() / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:200] + ".lock")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
