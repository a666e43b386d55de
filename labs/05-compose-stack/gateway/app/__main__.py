"""``python -m app``: uvicorn as PID 1, configured from the environment."""

import logging

import uvicorn

from app.settings import Settings

settings = Settings.from_env()
logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
uvicorn.run(
    "app.main:app",
    host="0.0.0.0",  # noqa: S104 (a container listens on all interfaces)
    port=settings.port,
    log_level=settings.log_level,
    timeout_graceful_shutdown=20,
)
