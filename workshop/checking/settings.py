"""What every lab.yml check has: a name and a kind. Each kind's own settings live beside
its code (``kinds/<family>.py``), in a model that refuses any setting it does not have."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class CheckSettings(BaseModel):
    """One requirement a lab's work must meet; a subclass per kind adds its settings."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
