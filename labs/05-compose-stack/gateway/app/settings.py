"""Configuration from environment variables; the database password from a file
(POSTGRES_PASSWORD_FILE: a Compose secret) or, outside Compose, POSTGRES_PASSWORD."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    model_url: str
    redis_url: str
    cache_ttl_seconds: int
    postgres_dsn: str
    port: int
    log_level: str

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        password = env.get("POSTGRES_PASSWORD", "")
        if env.get("POSTGRES_PASSWORD_FILE"):
            with open(env["POSTGRES_PASSWORD_FILE"]) as handle:
                password = handle.read().strip()
        dsn = (
            f"host={env.get('POSTGRES_HOST', 'db')} port={env.get('POSTGRES_PORT', '5432')} "
            f"dbname={env['POSTGRES_DB']} user={env['POSTGRES_USER']} "
            f"password={password} connect_timeout=5"
        )
        return cls(
            model_url=env.get("MODEL_URL", "http://model:8000"),
            redis_url=env.get("REDIS_URL", "redis://redis:6379/0"),
            cache_ttl_seconds=int(env.get("CACHE_TTL_SECONDS", "3600")),
            postgres_dsn=dsn,
            port=int(env.get("PORT", "8080")),
            log_level=env.get("LOG_LEVEL", "info"),
        )
