"""Activity 3's broken stack: a worker that needs Redis before it is ready (stdlib only).

It PINGs Redis at REDIS_HOST:REDIS_PORT once; if Redis answers it writes /run/worker-ready
(its health check looks for that file) and waits for work, else it says why and exits 1.
"""

import os
import signal
import socket
import sys
import time
from pathlib import Path


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1: docker stop is instant
    host = os.environ.get("REDIS_HOST", "cache")
    port = int(os.environ.get("REDIS_PORT", "6379"))
    try:
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError as exc:
        print(f"worker: cannot reach Redis at {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return 1
    if not reply.startswith(b"+PONG"):
        print(f"worker: {host}:{port} is not Redis (it said {reply!r})", file=sys.stderr)
        return 1
    print(f"worker: Redis at {host}:{port} answered {reply.strip().decode()}", flush=True)
    Path("/run/worker-ready").touch()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
