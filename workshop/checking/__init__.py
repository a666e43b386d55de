"""The check engine: what proves a lab's work, implemented once and used by the tests,
``workshop check`` (and the student's own ``lab check``) and the grader alike.

- ``results``: verdicts and evidence (``CheckResult``, ``LabRun``);
- ``session``: one lab on one target (build, run, clean up) and its ``Environment``;
- ``target``: where the commands run (this machine, or a student's VM as the student),
  and ``probe`` (standard library only) what runs there for HTTP and image reading;
- ``dockerfile``: the Dockerfile parser the checks and the grader's audit share;
- ``kinds``: the table of check kinds, each a settings model and a function, by family;
- ``runner``: ``run_lab`` and ``run_check``, and the environments of this machine and a VM.

Import the submodules (``from workshop.checking.runner import run_lab``); this package
re-exports the names callers use most.
"""

from workshop.checking.results import (
    ERROR,
    FAILED,
    NOT_DELIVERED,
    NOT_STARTED,
    PASSED,
    UNREACHABLE,
    CheckResult,
    LabRun,
)
from workshop.checking.runner import (
    classroom_environment,
    local_environment,
    published_images,
    run_check,
    run_lab,
)
from workshop.checking.session import LABEL, Environment, Session

__all__ = [
    "ERROR",
    "FAILED",
    "LABEL",
    "NOT_DELIVERED",
    "NOT_STARTED",
    "PASSED",
    "UNREACHABLE",
    "CheckResult",
    "Environment",
    "LabRun",
    "Session",
    "classroom_environment",
    "local_environment",
    "published_images",
    "run_check",
    "run_lab",
]
