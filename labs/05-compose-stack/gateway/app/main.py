"""The gateway: POST /predict -> Redis (by image hash) or the model server; every answer
logged to PostgreSQL. GET /health checks all three; GET /predictions lists the log."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import redis.asyncio as redis
from fastapi import FastAPI, File, HTTPException, Response, UploadFile
from psycopg_pool import AsyncConnectionPool

from app.settings import Settings

settings = Settings.from_env()
log = logging.getLogger("gateway")
deps: dict[str, Any] = {}

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id            bigserial PRIMARY KEY,
    image_sha256  text NOT NULL,
    top1          text NOT NULL,
    probability   real NOT NULL,
    cache         text NOT NULL,
    instance      text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
)"""


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    pool = AsyncConnectionPool(settings.postgres_dsn, min_size=1, max_size=4, open=False)
    await pool.open(wait=True, timeout=30)
    async with pool.connection() as connection:
        await connection.execute(SCHEMA)
    deps["db"] = pool
    deps["cache"] = redis.from_url(settings.redis_url)
    # No keep-alive: each call resolves "model" again, so replicas share the load.
    deps["model"] = httpx.AsyncClient(
        base_url=settings.model_url,
        timeout=30,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    yield
    await deps["model"].aclose()
    await deps["cache"].aclose()
    await pool.close()


app = FastAPI(title="ML gateway", version="1.0.0", lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    try:
        await deps["cache"].ping()
        async with deps["db"].connection() as connection:
            await connection.execute("SELECT 1")
        model = (await deps["model"].get("/health")).raise_for_status().json()
    except Exception as exc:  # any dependency down: not ready
        raise HTTPException(status_code=503, detail=f"not ready: {exc}") from None
    return {"status": "ok", "model": model["model"]}


@app.post("/predict")
async def predict(response: Response, file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008
    data = await file.read()
    digest = hashlib.sha256(data).hexdigest()
    key = f"prediction:{digest}"
    cached = await deps["cache"].get(key)
    if cached is not None:
        result, cache = json.loads(cached), "hit"
    else:
        answer = await deps["model"].post(
            "/predict", files={"file": (file.filename or "upload", data)}
        )
        if answer.status_code != 200:
            raise HTTPException(status_code=answer.status_code, detail=answer.json()["detail"])
        result, cache = answer.json(), "miss"
        await deps["cache"].set(key, json.dumps(result), ex=settings.cache_ttl_seconds)
    top = result["predictions"][0]
    async with deps["db"].connection() as connection:
        await connection.execute(
            "INSERT INTO predictions (image_sha256, top1, probability, cache, instance) "
            "VALUES (%s, %s, %s, %s, %s)",
            (digest, top["label"], top["probability"], cache, result["instance"]),
        )
    response.headers["X-Cache"] = cache
    response.headers["X-Model-Instance"] = result["instance"]
    return {**result, "cache": cache, "image_sha256": digest}


@app.get("/predictions")
async def predictions(limit: int = 10) -> list[dict[str, Any]]:
    async with deps["db"].connection() as connection:
        cursor = await connection.execute(
            "SELECT image_sha256, top1, probability, cache, instance, created_at "
            "FROM predictions ORDER BY id DESC LIMIT %s",
            (limit,),
        )
        columns = [column.name for column in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()]
