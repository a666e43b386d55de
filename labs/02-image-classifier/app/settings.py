"""Configuration from environment variables, read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    model_path: Path
    labels_path: Path
    top_k: int
    max_upload_bytes: int
    host: str
    port: int
    log_level: str
    max_delay_ms: int
    graceful_seconds: int

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            model_path=Path(env.get("MODEL_PATH", "/app/model/efficientnet_lite0.onnx")),
            labels_path=Path(env.get("LABELS_PATH", "/app/model/labels.json")),
            top_k=int(env.get("TOP_K", "5")),
            max_upload_bytes=int(float(env.get("MAX_UPLOAD_MB", "10")) * 1024 * 1024),
            host=env.get("HOST", "0.0.0.0"),  # noqa: S104 (a container listens on all)
            port=int(env.get("PORT", "8000")),
            log_level=env.get("LOG_LEVEL", "info"),
            # ?delay_ms= simulates slow inference (to watch graceful shutdown); off at 0.
            max_delay_ms=int(env.get("MAX_DELAY_MS", "0")),
            graceful_seconds=int(env.get("GRACEFUL_SECONDS", "20")),
        )
