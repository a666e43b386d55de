"""The HTTP API: GET /health (device, GPU, memory), POST /generate (JSON) -> a PNG."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

from app.pipeline import Diffusion
from app.settings import Settings

settings = Settings.from_env()
log = logging.getLogger("diffusion")
state: dict[str, Diffusion] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    state["pipeline"] = await run_in_threadpool(Diffusion, settings.model_dir, settings.device)
    yield
    log.info("shutting down: the generation in flight has finished")


app = FastAPI(title="Text to image", version="1.0.0", lifespan=lifespan)


class GenerateRequest(BaseModel):
    prompt: str = Field(min_length=1, max_length=500)
    steps: int = Field(default=2, ge=1, le=settings.max_steps)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    width: int = Field(default=512, ge=64, le=settings.max_size)
    height: int = Field(default=512, ge=64, le=settings.max_size)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty: describe the image to make")
        return value

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        # The VAE works on 8x8 blocks: other sizes fail deep inside the model.
        if value % 8:
            raise ValueError(f"{value} is not a multiple of 8 (e.g. {value - value % 8})")
        return value


@app.get("/health")
def health() -> dict[str, object]:
    pipeline = state.get("pipeline")
    if pipeline is None:
        raise HTTPException(status_code=503, detail="the model is still loading")
    return {
        "status": "ok",
        "model": pipeline.model_dir.name,
        "device": pipeline.device,
        **pipeline.gpu(),
    }


@app.post("/generate", responses={200: {"content": {"image/png": {}}}})
async def generate(request: GenerateRequest) -> Response:
    made = await run_in_threadpool(
        state["pipeline"].generate,
        request.prompt,
        request.steps,
        request.seed,
        request.width,
        request.height,
    )
    return Response(
        made.png,
        media_type="image/png",
        headers={"X-Generation-Seconds": f"{made.seconds:.3f}", "X-Seed": str(request.seed)},
    )
