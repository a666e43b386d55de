"""Running one of the kit's playbooks from Python and reading what happened per host.

``ansible-playbook`` runs as a user would run it (from the checkout, so ``ansible.cfg``
applies) with the ``ansible.posix.json`` callback: the result is data, not log text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workshop.errors import WorkshopError
from workshop.state import REPO_ROOT


@dataclass
class PlaybookRun:
    """What ansible-playbook reported: each task's per-host results, and the recap."""

    rc: int
    tasks: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    def results(self, task_name: str) -> dict[str, dict[str, Any]]:
        """Per host, the result of the task named ``task_name`` (last run of it)."""
        found: dict[str, dict[str, Any]] = {}
        for task in self.tasks:
            if task["task"]["name"].endswith(task_name):
                found.update(task["hosts"])
        return found

    def problem(self, host: str) -> str | None:
        """Why ``host`` did not finish: unreachable or the failing task's message."""
        stats = self.stats.get(host, {})
        # site.yml's stages rescue a host's failure (recorded for the table): count those.
        if not any(stats.get(key) for key in ("unreachable", "failures", "rescued")):
            return None
        for task in reversed(self.tasks):
            result = task["hosts"].get(host, {})
            if result.get("unreachable") or result.get("failed"):
                why = result.get("msg") or result.get("stderr") or "failed"
                kind = "unreachable" if result.get("unreachable") else task["task"]["name"]
                return f"{kind}: {str(why).strip().splitlines()[0][:300]}"
        return "unreachable" if stats.get("unreachable") else "failed"


def run(
    playbook: str,
    inventory: Path,
    extra_vars: dict[str, Any] | None = None,
    *,
    limit: str | None = None,
) -> PlaybookRun:
    """Run ``playbook`` (relative to the checkout) against ``inventory``."""
    command = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i", str(inventory), str(REPO_ROOT / playbook),
        "-e", json.dumps(extra_vars or {}),
    ]  # fmt: skip
    if limit:
        command += ["--limit", limit]
    env = {
        **os.environ,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        # Instead of ansible.cfg's per-task timing: one line, after the JSON.
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.timer",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    try:
        report, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{") :])
    except ValueError:
        tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise WorkshopError(f"ansible-playbook {playbook} failed before it ran: {tail}") from None
    tasks = [task for play in report.get("plays", []) for task in play.get("tasks", [])]
    return PlaybookRun(done.returncode, tasks, report.get("stats", {}))
