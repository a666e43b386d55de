"""``python -m app``: uvicorn as PID 1; SIGTERM lets in-flight requests finish (req. 5)."""

import logging

import uvicorn

from app.settings import Settings

settings = Settings.from_env()
logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
uvicorn.run(
    "app.main:app",
    host=settings.host,
    port=settings.port,
    log_level=settings.log_level,
    timeout_graceful_shutdown=settings.graceful_seconds,
)
