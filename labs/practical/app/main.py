"""GET /health; POST /predict {"features": {name: value}} -> cultivar and probabilities."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from app.settings import Settings

settings = Settings.from_env()
model: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    raw = json.loads(settings.model_path.read_text())
    model.update(raw)
    for key in ("mean", "scale", "coef", "intercept"):
        model[key] = np.asarray(raw[key])
    yield


app = FastAPI(title="Wine cultivar classifier", version="1.0.0", lifespan=lifespan)


class Wine(BaseModel):
    features: dict[str, float]


@app.get("/health")
def health() -> dict[str, object]:
    if not model:
        raise HTTPException(status_code=503, detail="the model is still loading")
    return {"status": "ok", "model": model["name"], "features": len(model["features"])}


@app.post("/predict")
async def predict(wine: Wine, delay_ms: int = 0) -> dict[str, object]:
    missing = [name for name in model["features"] if name not in wine.features]
    unknown = sorted(set(wine.features) - set(model["features"]))
    if missing or unknown:
        raise HTTPException(
            status_code=422,
            detail={"missing": missing, "unknown": unknown, "expected": model["features"]},
        )
    x = np.array([wine.features[name] for name in model["features"]])
    logits = model["coef"] @ ((x - model["mean"]) / model["scale"]) + model["intercept"]
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    if delay_ms and settings.max_delay_ms:  # simulated slow request (graceful shutdown demo)
        await asyncio.sleep(min(delay_ms, settings.max_delay_ms) / 1000)
    best = int(np.argmax(probabilities))
    return {
        "class": model["classes"][best],
        "probabilities": dict(zip(model["classes"], probabilities.round(4).tolist(), strict=True)),
    }
