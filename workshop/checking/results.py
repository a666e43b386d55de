"""What a check says: a verdict (passed, failed, error), one line the student can act
on, and the evidence it saw; a lab run's verdict over all its checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASSED, FAILED, ERROR = "passed", "failed", "error"


# Verdicts of a whole lab run besides passed/failed/error.
NOT_DELIVERED, NOT_STARTED, UNREACHABLE = "not delivered", "not started", "unreachable"


@dataclass
class CheckResult:
    """One check's verdict, what it saw, and one line the student can act on."""

    name: str
    kind: str
    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == PASSED


@dataclass
class LabRun:
    """One lab checked on one target: the verdict and every check's result."""

    lab: str
    target: str
    status: str
    message: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    checked_at: str = ""
    seconds: float = 0.0
    student: str | None = None
    host: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LabRun:
        checks = [CheckResult(**check) for check in raw.pop("checks", [])]
        return cls(**raw, checks=checks)


def passed(message: str, **evidence: Any) -> tuple[str, str, dict[str, Any]]:
    return PASSED, message, evidence


def failed(message: str, **evidence: Any) -> tuple[str, str, dict[str, Any]]:
    return FAILED, message, evidence


def error(message: str, **evidence: Any) -> tuple[str, str, dict[str, Any]]:
    return ERROR, message, evidence


Outcome = tuple[str, str, dict[str, Any]]
