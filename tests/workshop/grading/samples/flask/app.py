"""A sentiment scorer (a tiny word list) served by Flask under gunicorn."""

import os

from flask import Flask, jsonify, request

POSITIVE = {"good", "great", "excellent", "love", "tasty"}
NEGATIVE = {"bad", "awful", "terrible", "hate", "bland"}
THRESHOLD = float(os.environ.get("THRESHOLD", "0"))

app = Flask(__name__)


@app.get("/health")
def health():
    return jsonify(status="ok")


@app.post("/predict")
def predict():
    payload = request.get_json(silent=True) or {}
    words = str(payload.get("text", "")).lower().split()
    score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    return jsonify(label="positive" if score > THRESHOLD else "negative", score=score)
