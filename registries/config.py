"""The registries file (``registries.yml``): which clouds, and how the kit uses them.

One YAML file, parsed once into the adapters' typed settings; every mistake is reported
with the file, the key and what was expected. Credentials never go in it: they come from
each cloud's standard chain (AWS profiles/env, Google ADC, Azure DefaultAzureCredential).
See ``registries.example.yml`` and README, 'Registries'.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, with_config

from registries.acr import AcrSettings
from registries.artifact import ArtifactSettings
from registries.base import Registry, RegistryError
from registries.ecr import EcrSettings
from workshop import yamlfile

DEFAULT_FILE = "registries.yml"
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
    parsed = yamlfile.load_model(path, RegistriesFile, error=RegistryError)
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


def open_registry(name: str, config: RegistriesFile, cohort: str | None = None) -> Registry:
    """The adapter for ``name``, built from its section of the registries file."""
    module_name, _, class_name = REGISTRIES[name].partition(":")
    adapter: Any = getattr(importlib.import_module(module_name), class_name)
    if name == "local":
        if config.local is None:
            return adapter.for_cohort(cohort or DEFAULT_COHORT)  # type: ignore[no-any-return]
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
