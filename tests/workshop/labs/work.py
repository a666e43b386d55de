"""A student's copy of a lab on this machine, checked with the kit's own checks.

The lab tests do not test the reference solutions their own way: they write the copy a
student gets (``handout``), complete it with the solution as a student who finished would,
and run ``checking.run_lab`` on it, the same code ``workshop check`` runs on a VM.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from workshop import checking, trust
from workshop.checking.target import LocalTarget
from workshop.labs import catalog, handout


def student_copy(lab: catalog.Lab, directory: Path, *, solution: bool = True) -> Path:
    """``directory/<lab>`` as a student has it: finished (``solution``) or as delivered."""
    ca = trust.extra_ca_bundle()
    files = handout.solution_files(lab, ca) if solution else handout.student_files(lab, ca)
    work = handout.write_tree(lab, files, directory / lab.name)
    if solution and lab.compose and "db_password" in (work / lab.compose).read_text():
        (work / "db_password.txt").write_text("s3cret-pw\n")  # the Compose lab's first step
    return work


def run(
    engine, lab: catalog.Lab, work: Path, *, builder: str = "classic", **environment
) -> checking.LabRun:
    """The lab's checks on ``work``, with this machine's base and lab images; ``builder``
    "buildkit" for labs whose techniques only BuildKit has."""
    env = checking.local_environment(engine, lab, **environment)
    return checking.run_lab(lab, LocalTarget(work, builder=builder), env)


def result(run: checking.LabRun, kind: str) -> checking.CheckResult:
    """The (first) result of a check kind; fails the test when the kind did not run."""
    found = [check for check in run.checks if check.kind == kind]
    assert found, f"no {kind} check ran: {[c.kind for c in run.checks]}"
    return found[0]


def all_passed(run: checking.LabRun) -> None:
    failures = [f"{c.name}: {c.status}: {c.message}" for c in run.checks if not c.passed]
    assert not failures, "\n".join([run.message, *failures])
    assert run.status == checking.PASSED, run.message


def page_commands(page: str) -> list[tuple[str, bool]]:
    """The commands of a student page's ```bash blocks, as a student types them: one per
    logical line (a trailing backslash continues it), and whether the page says it fails
    (a trailing ``# fails`` comment)."""
    commands: list[tuple[str, bool]] = []
    pattern = r"^( *)```bash\n(.*?)^ *```"  # blocks in list items are indented
    for indent, block in re.findall(pattern, page, flags=re.MULTILINE | re.DOTALL):
        logical = ""
        for line in block.splitlines():
            line = line.removeprefix(indent)
            logical += line.rstrip()
            if logical.endswith("\\"):
                logical = logical[:-1] + " "
                continue
            if logical.strip() and not logical.lstrip().startswith("#"):
                commands.append((logical.strip(), re.search(r"\s#\s*fails\b", logical) is not None))
            logical = ""
    return commands


def page_script(directory: str, commands: list[tuple[str, bool]], tries: int = 30) -> str:
    """A bash script that runs the commands in ``directory`` in order, as one session; a
    command that fails is tried again for a minute (as a student waits for a server to
    come up) before the script stops, naming it; one the page says fails must fail."""
    lines = [
        f"cd {directory} || exit 1",
        'try() { local n=0; until eval "$1"; do n=$((n + 1)); '
        f'[ "$n" -ge {tries} ] && {{ echo "page command failed: $1" >&2; return 1; }}; '
        "sleep 2; done; }",
        'fails() { if eval "$1"; then echo "page command should have failed: $1" >&2; '
        "return 1; fi; }",
    ]
    lines += [
        f"{'fails' if expect_fail else 'try'} {shlex.quote(command)} || exit 1"
        for command, expect_fail in commands
    ]
    return "\n".join(lines) + "\n"
