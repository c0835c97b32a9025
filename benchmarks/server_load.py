"""Bounded load test of ``modnet serve`` on loopback: requests/s, p50/p99 latency, errors.

Starts the server in a subprocess on 127.0.0.1 (a free port), sends a fixed
number of requests with a fixed concurrency, then stops it. Nothing leaves the
machine. Without ``--weights`` a randomly initialised checkpoint is written to
a temporary folder: speed does not depend on the weights' values.

    python benchmarks/server_load.py --requests 200 --concurrency 8 --size 256
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ASSET = Path(__file__).resolve().parents[1] / "src" / "modnet_matting" / "assets" / "grace_hopper.jpg"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def random_weights(folder: Path) -> Path:
    import torch

    from modnet_matting.model import MODNet
    from modnet_matting.weights import WeightsConfig, save_weights

    torch.manual_seed(0)
    path = folder / "random.safetensors"
    save_weights(MODNet().eval(), path, WeightsConfig(card={"source": "random (benchmark)"}), dtype=torch.float32)
    return path


def test_image(size: int) -> bytes:
    """The bundled photo, long side scaled to ``size``, as JPEG."""
    with Image.open(ASSET) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def start_server(port: int, weights: Path, max_batch: int, backend: str, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "modnet_matting.cli.main", "serve", "--host", HOST, "--port", str(port),
        "--weights", str(weights), "--device", "cpu", "--backend", backend, "--max-batch", str(max_batch),
    ]
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_ready(base: str, process: subprocess.Popen, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become ready in time")


async def load(base: str, body: bytes, requests: int, concurrency: int, output: str) -> tuple[list[float], int, float]:
    """Latencies (s) of successful requests, error count, wall time."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal errors
        async with semaphore:
            start = time.perf_counter()
            try:
                response = await client.post(f"/v1/matte?output={output}", content=body)
                ok = response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n"
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        await asyncio.gather(*(one(client) for _ in range(min(concurrency, 4))))  # warm-up, not counted
        latencies.clear()
        errors = 0
        started = time.perf_counter()
        await asyncio.gather(*(one(client) for _ in range(requests)))
        wall = time.perf_counter() - started
    return latencies, errors, wall


def run_case(args: argparse.Namespace, weights: Path, max_batch: int, body: bytes, log_dir: Path) -> dict:
    port = free_port()
    base = f"http://{HOST}:{port}"
    process = start_server(port, weights, max_batch, args.backend, log_dir / f"server_batch{max_batch}.log")
    try:
        wait_ready(base, process)
        latencies, errors, wall = asyncio.run(load(base, body, args.requests, args.concurrency, args.output))
        health = httpx.get(base + "/healthz", timeout=5).json()
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([np.nan])
    return {
        "max_batch": max_batch,
        "backend": f"{health['backend']} {health['precision']}",
        "load_average_after": round(os.getloadavg()[0], 2),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "ok": len(latencies),
        "errors": errors,
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "mean_batch": round(health["images_run"] / max(1, health["batches_run"]), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="long side of the test photo in pixels")
    parser.add_argument("--output", default="alpha", choices=["alpha", "cutout", "composite"])
    parser.add_argument("--max-batch", type=int, nargs="+", default=[1, 8], help="server --max-batch values to compare")
    parser.add_argument("--backend", default="auto", help="server --backend (default: auto)")
    parser.add_argument("--weights", type=Path, default=None, help="weights file (default: random weights)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/server_load.json"))
    args = parser.parse_args()
    if not 1 <= args.requests <= 2000 or not 1 <= args.concurrency <= 64:
        parser.error("keep the load bounded: --requests 1..2000, --concurrency 1..64")

    body = test_image(args.size)
    with Image.open(io.BytesIO(body)) as img:
        width, height = img.size
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or random_weights(Path(tmp))
        rows = [run_case(args, weights, batch, body, Path(tmp)) for batch in args.max_batch]

    header = (f"{'max_batch':>9} {'backend':>14} {'ok':>5} {'errors':>6} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'mean batch':>10} {'load avg':>8}")
    print(f"POST /v1/matte?output={args.output}, {width}x{height} JPEG, {args.requests} requests, "
          f"concurrency {args.concurrency}, {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}")
    print(header)
    for row in rows:
        print(f"{row['max_batch']:>9} {row['backend']:>14} {row['ok']:>5} {row['errors']:>6} "
              f"{row['requests_per_s']:>7} {row['p50_ms']:>8} {row['p99_ms']:>8} {row['mean_batch']:>10} "
              f"{row['load_average_after']:>8}")
    report = {
        "benchmark": "server_load",
        "image": f"{width}x{height} JPEG",
        "output": args.output,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average_before": load_before,
        "results": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
