"""The HTTP API: GET /health, POST /predict (multipart image upload) -> top-k labels."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool

from app.model import Classifier, NotAnImage
from app.settings import Settings

settings = Settings.from_env()
log = logging.getLogger("classifier")
state: dict[str, Classifier] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    state["classifier"] = Classifier(settings.model_path, settings.labels_path)
    log.info("model %s loaded (%d labels)", settings.model_path, len(state["classifier"].labels))
    yield
    log.info("shutting down: in-flight requests have finished")


app = FastAPI(title="Image classifier", version="1.0.0", lifespan=lifespan)


@app.get("/health")
def health() -> dict[str, object]:
    classifier = state.get("classifier")
    if classifier is None:
        raise HTTPException(status_code=503, detail="the model is still loading")
    return {"status": "ok", "model": classifier.name, "labels": len(classifier.labels)}


@app.post("/predict")
async def predict(
    file: UploadFile = File(..., description="A JPEG or PNG photograph"),  # noqa: B008
    delay_ms: int = Query(0, ge=0, description="Simulated extra latency (MAX_DELAY_MS caps it)"),
) -> dict[str, object]:
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        limit = settings.max_upload_bytes // 1024 // 1024
        raise HTTPException(
            status_code=413, detail=f"the upload is over {limit} MB (MAX_UPLOAD_MB)"
        )
    if not data:
        raise HTTPException(status_code=400, detail="the upload is empty: send an image file")
    started = time.perf_counter()
    try:
        predictions = await run_in_threadpool(state["classifier"].predict, data, settings.top_k)
    except NotAnImage:
        raise HTTPException(
            status_code=415,
            detail=f"{file.filename or 'the upload'} is not an image this service can read: "
            "send a JPEG or PNG photograph",
        ) from None
    if delay_ms and settings.max_delay_ms:
        await asyncio.sleep(min(delay_ms, settings.max_delay_ms) / 1000)
    return {
        "model": state["classifier"].name,
        "predictions": [asdict(p) for p in predictions],
        "inference_ms": round((time.perf_counter() - started) * 1000, 1),
        # Which container answered: with several replicas, each has its own hostname.
        "instance": socket.gethostname(),
    }
