"""Where the kit keeps per-cohort state, and how it writes files there safely.

Each cohort has its own directory (``state/<cohort>/`` in the checkout by default, or
under ``$WORKSHOP_STATE_DIR``). It holds SSH keys, the classroom registry's CA and
credentials, and the Ansible inventory; the directory is git-ignored and secrets in it
are written 0600. ``state/current`` points at the cohort that ``ansible.cfg`` reaches.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CURRENT_LINK = "current"


def state_root() -> Path:
    """The directory holding every cohort's state directory."""
    return Path(os.environ.get("WORKSHOP_STATE_DIR", REPO_ROOT / "state")).resolve()


def cohort_dir(cohort: str) -> Path:
    """The state directory of one cohort (not created)."""
    return state_root() / cohort


def write_file(path: Path, data: str | bytes, *, secret: bool = False) -> None:
    """Write ``data`` to ``path`` atomically; ``secret`` files are 0600 from the start.

    The content goes to a temporary file in the same directory that is renamed over the
    target, so a crash never leaves a half-written inventory or key behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def point_current_at(cohort: str) -> None:
    """Make ``state/current`` a symlink to this cohort's directory (what ansible.cfg reads)."""
    link = state_root() / CURRENT_LINK
    tmp = state_root() / f".{CURRENT_LINK}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(cohort)
    os.replace(tmp, link)


def remove_cohort_dir(cohort: str) -> bool:
    """Delete a cohort's state directory, and ``current`` if it pointed there.

    Returns whether anything was removed.
    """
    link = state_root() / CURRENT_LINK
    if link.is_symlink() and os.readlink(link) == cohort:
        link.unlink()
    directory = cohort_dir(cohort)
    if not directory.exists():
        return False
    shutil.rmtree(directory)
    return True
