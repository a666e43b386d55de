"""The HTTP API: GET /health, POST /predict (multipart image upload) -> top-k labels."""

from __future__ import annotations

from fastapi import FastAPI, File, UploadFile

from app.model import Classifier  # noqa: F401 (you will need it)
from app.settings import Settings

settings = Settings.from_env()
app = FastAPI(title="Image classifier")

# TODO 1: load the Classifier once, at start-up (a FastAPI lifespan), not per request.


@app.get("/health")
def health() -> dict[str, object]:
    # TODO 2: 503 while the model loads; then {"status": "ok", "model": ..., "labels": 1000}
    raise NotImplementedError


@app.post("/predict")
async def predict(file: UploadFile = File(...)) -> dict[str, object]:  # noqa: B008
    # TODO 3: read the upload, run Classifier.predict in a thread pool, return the top 5;
    # a file that is not an image must get a 415 with a clear message.
    raise NotImplementedError
