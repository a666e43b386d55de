"""A wine-style classifier served by the standard library's http.server.

GET /health answers 200 once the model is loaded; POST /predict takes
{"features": [number, ...]} and answers the nearest centroid's label. On SIGTERM the
server stops accepting, finishes the requests in flight and exits 0.
"""

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEALTH_PATH = "/health"
MODEL_PATH = os.environ.get("MODEL_PATH", "/app/model.json")
with open(MODEL_PATH) as handle:
    CENTROIDS = json.load(handle)["centroids"]


def predict(features: list[float]) -> str:
    def distance(centre: list[float]) -> float:
        return sum((a - b) ** 2 for a, b in zip(features, centre, strict=False))

    return min(CENTROIDS, key=lambda label: distance(CENTROIDS[label]))


class Handler(BaseHTTPRequestHandler):
    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self.answer(200, {"status": "ok"})
        else:
            self.answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            self.answer(404, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length", 0))
        try:
            features = [float(x) for x in json.loads(self.rfile.read(length))["features"]]
        except (ValueError, KeyError, TypeError):
            self.answer(400, {"error": 'send {"features": [numbers]}'})
            return
        self.answer(200, {"label": predict(features)})


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
    server.daemon_threads = False  # server_close() waits for requests in flight

    def stop(signum, frame):  # shutdown() blocks until serve_forever returns: not here
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
