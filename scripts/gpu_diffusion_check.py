"""Activity 4's service on a real GPU, natively (the lent machine has no Docker): started as
the container starts it (``python -m app``, MODEL_DIR on the tiny pipeline), N
generations timed (the first, then warm: p50), the GPU memory from /health and from
nvidia-smi, then the same on the CPU for the ratio. JSON to --out; run by gpu_check.sh.

    python3 scripts/gpu_diffusion_check.py --out $OUT/diffusion.json [--devices cuda,cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

LAB = Path(__file__).resolve().parent.parent / "labs/07-gpu-diffusion"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(url: str, body: dict[str, Any] | None = None, timeout: float = 300) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def nvidia_smi_memory() -> int | None:
    if not shutil.which("nvidia-smi"):
        return None
    shown = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return int(shown.stdout.split()[0]) if shown.returncode == 0 and shown.stdout else None


def measure(device: str, model_dir: Path, sizes: list[int], count: int) -> dict[str, Any]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(LAB),
        "MODEL_DIR": str(model_dir),
        "DEVICE": device,
        "PORT": str(port),
        "HF_HUB_OFFLINE": "1",
        "LOG_LEVEL": "warning",
    }
    started = time.monotonic()
    server = subprocess.Popen([sys.executable, "-m", "app"], env=env, cwd=LAB)
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"device": device}
    try:
        while True:
            if server.poll() is not None:
                return {**result, "error": f"the service exited with {server.returncode}"}
            try:
                status, body = call(f"{base}/health", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - started > 300:
                return {**result, "error": "no /health answer in 300 s"}
            time.sleep(0.5)
        result["ready_seconds"] = round(time.monotonic() - started, 2)
        result["health"] = json.loads(body)
        for size in sizes:
            times, digests = [], set()
            for index in range(count):
                request = {"prompt": "a lighthouse at dusk", "steps": 4, "seed": 7}
                request.update(width=size, height=size)
                begun = time.perf_counter()
                status, png = call(f"{base}/generate", request)
                times.append(time.perf_counter() - begun)
                if status != 200 or not png.startswith(b"\x89PNG"):
                    return {**result, "error": f"{size} px, request {index}: HTTP {status}"}
                digests.add(png)
            warm = times[1:] or times
            result[f"{size}px"] = {
                "steps": 4,
                "first_seconds": round(times[0], 4),
                "warm_p50_seconds": round(statistics.median(warm), 4),
                "warm_min_seconds": round(min(warm), 4),
                "generations": len(times),
                "same_seed_same_png": len(digests) == 1,
            }
        status, body = call(f"{base}/health", timeout=5)
        result["health_after"] = json.loads(body)
        result["nvidia_smi_memory_used_mb"] = nvidia_smi_memory()
        stop = time.monotonic()
        server.terminate()  # SIGTERM, as docker stop
        result["exit_code"] = server.wait(timeout=60)
        result["stop_seconds"] = round(time.monotonic() - stop, 2)
        return result
    finally:
        if server.poll() is None:
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--devices", default="cuda,cpu")
    parser.add_argument("--sizes", default="128,512")
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="tiny-") as scratch:
        model_dir = Path(scratch) / "tiny"
        made = subprocess.run(
            [sys.executable, "-m", "app.tiny", str(model_dir)],
            env={**os.environ, "PYTHONPATH": str(LAB)}, cwd=LAB, check=False,
        )  # fmt: skip
        if made.returncode != 0:
            print("app.tiny failed", file=sys.stderr)
            return 1
        report: dict[str, Any] = {"python": sys.version.split()[0]}
        try:
            import torch

            report["torch"] = torch.__version__
            report["torch_cuda"] = torch.version.cuda
        except ImportError as exc:
            report["torch"] = f"missing: {exc}"
        for device in args.devices.split(","):
            count = args.count if device.startswith("cuda") else max(3, args.count // 3)
            report[device] = measure(device, model_dir, sizes, count)
        cuda, cpu = report.get("cuda", {}), report.get("cpu", {})
        for size in sizes:
            key = f"{size}px"
            if key in cuda and key in cpu:
                ratio = cpu[key]["warm_p50_seconds"] / cuda[key]["warm_p50_seconds"]
                report[f"cpu_over_gpu_{key}"] = round(ratio, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if all("error" not in report.get(d, {}) for d in args.devices.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
