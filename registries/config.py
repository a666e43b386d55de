"""The registries file (``registries.yml``): which clouds, and how the kit uses them.

One YAML file, parsed once into the adapters' typed settings; every mistake is reported
with the file, the key and what was expected. Credentials never go in it: they come from
each cloud's standard chain (AWS profiles/env, Google ADC, Azure DefaultAzureCredential).
See ``registries.example.yml`` and README, 'Registries'.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, with_config

from registries.acr import AcrSettings
from registries.artifact import ArtifactSettings
from registries.base import Registry, RegistryError
from registries.ecr import EcrSettings

DEFAULT_FILE = "registries.yml"
EXAMPLE_FILE = "registries.example.yml"
DEFAULT_COHORT = "lab"

# name -> "module:class"; adding a registry is one module and one line here.
REGISTRIES: dict[str, str] = {
    "local": "registries.local:LocalRegistry",
    "ecr": "registries.ecr:EcrRegistry",
    "gcr": "registries.artifact:ArtifactRegistry",
    "acr": "registries.acr:AcrRegistry",
}


@with_config(ConfigDict(extra="forbid"))
@dataclass
class LocalSettings:
    """A distribution registry of your own; without it, the lab cloud cohort's."""

    address: str
    username: str
    password_file: str
    ca_file: str | None = None


class RegistriesFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    ecr: EcrSettings | None = None
    gcr: ArtifactSettings | None = None
    acr: AcrSettings | None = None
    local: LocalSettings | None = None
    # Per student: <cohort>/<login>/<name> for each name.
    student_repositories: list[str] = Field(default_factory=lambda: ["classifier"])
    path: Path | None = Field(default=None, exclude=True)


def file_path(explicit: str | Path | None = None) -> Path:
    """--config, else $WORKSHOP_REGISTRIES, else ./registries.yml."""
    return Path(explicit or os.environ.get("WORKSHOP_REGISTRIES") or DEFAULT_FILE)


def load(explicit: str | Path | None = None) -> RegistriesFile:
    """Parse the registries file; a missing default file means "local only"."""
    path = file_path(explicit)
    if not path.exists():
        if explicit or os.environ.get("WORKSHOP_REGISTRIES"):
            raise RegistryError(
                f"{path}: no such registries file: copy registries.example.yml and edit it"
            )
        return RegistriesFile()
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RegistryError(
            f"{path}:{f' line {mark.line + 1}' if mark else ''}: not valid YAML: {exc}"
        ) from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: expected a mapping of keys to values (see {EXAMPLE_FILE})")
    try:
        parsed = RegistriesFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc']))}: {item['msg'].lower()}"
            for item in exc.errors(include_url=False)
        )
        raise RegistryError(f"{path}: {problems}") from None
    parsed.path = path
    return parsed


def parse_names(text: str) -> list[str]:
    """``"ecr,gcr"`` -> ``["ecr", "gcr"]``, refusing names the kit does not know."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in REGISTRIES]
    if unknown or not names:
        raise RegistryError(
            f"unknown registry {', '.join(repr(n) for n in unknown) or repr(text)}: choose "
            f"from {', '.join(REGISTRIES)} (comma-separated, e.g. --registries ecr,gcr)"
        )
    return list(dict.fromkeys(names))


def open_registry(
    name: str,
    config: RegistriesFile,
    cohort: str | None = None,
    default_local: Callable[[str], Registry] | None = None,
) -> Registry:
    """The adapter for ``name``, built from its section of the registries file.

    Without a ``local:`` section, ``default_local(cohort)`` gives the local registry (the
    kit passes the lab cloud cohort's classroom registry)."""
    module_name, _, class_name = REGISTRIES[name].partition(":")
    adapter: Any = getattr(importlib.import_module(module_name), class_name)
    if name == "local":
        if config.local is None:
            if default_local is None:
                raise RegistryError(
                    f"local: not configured: add the 'local:' section to "
                    f"{config.path or file_path()} (address, username, password_file)"
                )
            return default_local(cohort or DEFAULT_COHORT)
        local = config.local
        try:
            password = Path(local.password_file).read_text().strip()
        except OSError:
            raise RegistryError(
                f"local: cannot read local.password_file {local.password_file!r}: point it at "
                "a file holding the registry password (mode 0600)"
            ) from None
        return adapter(local.address, local.username, password, local.ca_file)  # type: ignore[no-any-return]
    settings = getattr(config, name)
    if settings is None:
        where = config.path or file_path()
        raise RegistryError(
            f"{name}: not configured: add the '{name}:' section to {where} "
            "(see registries.example.yml)"
        )
    return adapter(settings)  # type: ignore[no-any-return]
