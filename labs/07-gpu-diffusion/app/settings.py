"""Configuration from environment variables, read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    device: str  # auto | cuda | cuda:N | cpu
    max_steps: int
    max_size: int
    host: str
    port: int
    log_level: str
    graceful_seconds: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            # The weights are never in the image: a volume is mounted here (README).
            model_dir=Path(env.get("MODEL_DIR", "/models/sd-turbo")),
            device=env.get("DEVICE", "auto"),
            max_steps=int(env.get("MAX_STEPS", "8")),
            max_size=int(env.get("MAX_SIZE", "768")),
            host=env.get("HOST", "0.0.0.0"),  # noqa: S104 (a container listens on all)
            port=int(env.get("PORT", "8000")),
            log_level=env.get("LOG_LEVEL", "info"),
            graceful_seconds=int(env.get("GRACEFUL_SECONDS", "30")),
        )
