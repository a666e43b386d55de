"""The lab cloud's classroom registry as a registry adapter, logged in as the instructor.

``registries/`` knows registries only; where a lab cloud cohort keeps its registry's
address, instructor login, CA and student passwords is the lab cloud's business, so the
adapter is put together here.
"""

from __future__ import annotations

import json

from registries.base import RegistryError
from registries.local import LocalRegistry
from workshop.errors import WorkshopError
from workshop.labcloud.spec import paths, read_record


def classroom_registry(cohort: str) -> LocalRegistry:
    """Cohort ``cohort``'s classroom registry; a cohort that is not up raises WorkshopError."""
    record = read_record(cohort, "classroom registry")
    files = paths(cohort)
    login = json.loads(files.registry_credentials.read_text())

    def student_password(student: str) -> str | None:
        try:
            return (files.student_dir(student) / "password").read_text().strip()
        except FileNotFoundError:
            return None

    return LocalRegistry(
        record["registry"]["address"],
        login["username"],
        login["password"],
        str(files.ca_cert),
        student_password=student_password,
        cohort=cohort,
    )


def default_local(cohort: str) -> LocalRegistry:
    """``classroom_registry`` as ``registries.config.open_registry``'s ``default_local``:
    a cohort that is not up is a RegistryError naming ``local``, like any adapter's."""
    try:
        return classroom_registry(cohort)
    except WorkshopError as exc:
        raise RegistryError(f"local: {exc}") from None
