"""A tiny scoring service: a linear model whose weights were fetched at build time.

GET /health -> {"status": "ok", "features": N}; POST /predict {"features": [N numbers]}
-> {"score": s}. Listens on $PORT (default 8000); SIGTERM finishes what is in flight.
"""

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

with open(os.environ.get("WEIGHTS", "/app/weights.json")) as handle:
    WEIGHTS = json.load(handle)
COEF = np.array(WEIGHTS["coef"], dtype=np.float64)


class Handler(BaseHTTPRequestHandler):
    def reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/health":
            self.reply(200, {"status": "ok", "features": int(COEF.size)})
        else:
            self.reply(404, {"detail": "not found"})

    def do_POST(self) -> None:
        if self.path != "/predict":
            return self.reply(404, {"detail": "not found"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            features = np.array(body["features"], dtype=np.float64)
            if features.shape != COEF.shape:
                raise ValueError(f"expected {COEF.size} features")
        except (ValueError, KeyError, TypeError) as exc:
            return self.reply(422, {"detail": str(exc)})
        score = float(features @ COEF + WEIGHTS["intercept"])
        return self.reply(200, {"score": round(score, 6)})

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


ThreadingHTTPServer.daemon_threads = False  # server_close() waits for requests in flight
ADDRESS = ("0.0.0.0", int(os.environ.get("PORT", "8000")))  # noqa: S104 (in a container)
server = ThreadingHTTPServer(ADDRESS, Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(f"serving {COEF.size} features on port {server.server_address[1]}", flush=True)
server.serve_forever()
server.server_close()
