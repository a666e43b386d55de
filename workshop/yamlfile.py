"""Reading a YAML file into a pydantic model, with errors that name the file and the key.

The kit's hand-edited files (``registries.yml``, each lab's ``lab.yml``) are parsed here
once; a mistake is one line: ``<file>: <key.path>: <what was expected>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from workshop.errors import WorkshopError

M = TypeVar("M", bound=BaseModel)


def load_model(path: Path, model: type[M], *, error: type[WorkshopError] = WorkshopError) -> M:
    """Parse ``path`` as a mapping and validate it as ``model``; problems raise ``error``."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise error(f"{path}:{where}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping of keys to values, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg'].lower()}"
            for problem in exc.errors(include_url=False)
        )
        raise error(f"{path}: {problems}") from None
