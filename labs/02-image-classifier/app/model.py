"""EfficientNet-Lite0 (ImageNet) with ONNX Runtime: preprocessing, inference, top-k."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, UnidentifiedImageError

SIZE = 224
RESIZE = 256
# EfficientNet-Lite was trained on inputs scaled as (pixel - 127) / 128.
MEAN = 127.0
STD = 128.0


class NotAnImage(ValueError):
    """The upload is not an image Pillow can decode."""


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float


class Classifier:
    """Loads the model once; ``predict`` is safe to call from several threads."""

    def __init__(self, model_path: Path, labels_path: Path) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 0  # ONNX Runtime picks the cores it is given
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.labels: list[str] = json.loads(labels_path.read_text())
        self.name = model_path.stem

    @staticmethod
    def preprocess(data: bytes) -> np.ndarray:
        """Resize the short side to 256, centre-crop 224, scale, NCHW float32."""
        try:
            image = Image.open(io.BytesIO(data))
            image = image.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise NotAnImage(str(exc)) from None
        width, height = image.size
        scale = RESIZE / min(width, height)
        image = image.resize((round(width * scale), round(height * scale)), Image.BILINEAR)
        width, height = image.size
        left, top = (width - SIZE) // 2, (height - SIZE) // 2
        image = image.crop((left, top, left + SIZE, top + SIZE))
        array = (np.asarray(image, dtype=np.float32) - MEAN) / STD
        return array.transpose(2, 0, 1)[np.newaxis]

    def predict(self, data: bytes, top_k: int = 5) -> list[Prediction]:
        logits = self.session.run(None, {self.input_name: self.preprocess(data)})[0][0]
        exp = np.exp(logits - logits.max())
        probabilities = exp / exp.sum()
        best = np.argsort(-probabilities)[:top_k]
        return [Prediction(int(i), self.labels[i], float(probabilities[i])) for i in best]
