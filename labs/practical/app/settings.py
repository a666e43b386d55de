"""Every setting from the environment (requirement 6), read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    model_path: Path
    host: str
    port: int
    log_level: str
    graceful_seconds: int
    max_delay_ms: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            model_path=Path(env.get("MODEL_PATH", "/app/model/model.json")),
            host=env.get("HOST", "0.0.0.0"),  # noqa: S104 (a container listens on all)
            port=int(env.get("PORT", "8000")),
            log_level=env.get("LOG_LEVEL", "info"),
            graceful_seconds=int(env.get("GRACEFUL_SECONDS", "20")),
            max_delay_ms=int(env.get("MAX_DELAY_MS", "0")),
        )
