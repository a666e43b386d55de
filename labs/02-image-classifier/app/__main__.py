"""``python -m app``: serve with uvicorn, configured from the environment.

uvicorn runs as PID 1 (exec-form CMD), so SIGTERM from ``docker stop`` reaches it: it
stops accepting connections, lets in-flight requests finish (up to GRACEFUL_SECONDS),
then exits 0.
"""

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
    access_log=True,
)
