"""Bounded load test of ``modnet serve`` on loopback: requests/s, p50/p95/p99 latency, answers, peak RSS.

Starts the server in a subprocess on 127.0.0.1 (a free port), sends a fixed
number of requests at each concurrency, then stops it. Nothing leaves the
machine. Without ``--weights`` a randomly initialised checkpoint is written to
a temporary folder: speed does not depend on the weights' values. Every answer
is counted by status (a 503 is the server refusing a full queue, as designed);
the server's peak resident memory is read from /proc (VmHWM) before it stops.
``--slow-clients N`` adds a run in which N clients send their headers and then
trickle the body a byte a second while the normal load goes on: it shows what
they cost the others and when the server cuts them off (``--timeout`` seconds).

    python benchmarks/server_load.py --requests 200 --concurrency 1 4 16 100 --size 256 \
        --slow-clients 20 --server-timeout 10
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


def start_server(port: int, weights: Path, max_batch: int, backend: str, log: Path,
                 timeout_s: float) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "modnet_matting.cli.main", "serve", "--host", HOST, "--port", str(port),
        "--weights", str(weights), "--device", "cpu", "--backend", backend, "--max-batch", str(max_batch),
        "--timeout", str(timeout_s),
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


async def load(base: str, body: bytes, requests: int, concurrency: int, output: str) -> tuple[list[float], dict, float]:
    """Latencies (s) of successful requests, answers by status ("transport" where none came), wall time."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    answers: dict[str, int] = {}

    async def one(client: httpx.AsyncClient) -> None:
        async with semaphore:
            start = time.perf_counter()
            try:
                response = await client.post(f"/v1/matte?output={output}", content=body)
                status = str(response.status_code)
                if response.status_code == 200 and response.content[:8] != b"\x89PNG\r\n\x1a\n":
                    status = "200-not-png"
            except httpx.HTTPError:
                status = "transport"
            if status == "200":
                latencies.append(time.perf_counter() - start)
            answers[status] = answers.get(status, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        await asyncio.gather(*(one(client) for _ in range(min(concurrency, 4))))  # warm-up, not counted
        latencies.clear()
        answers.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one(client) for _ in range(requests)))
        wall = time.perf_counter() - started
    return latencies, answers, wall


async def slow_client(port: int, body: bytes, give_up_s: float) -> tuple[str, float]:
    """Headers, then the body a byte a second: how the server ended it (its status, or "closed") and when."""
    reader, writer = await asyncio.open_connection(HOST, port)
    started = time.perf_counter()
    writer.write(f"POST /v1/matte HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: image/jpeg\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode())
    outcome = "still open"
    try:
        for byte in body:
            if time.perf_counter() - started > give_up_s:
                break
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                line = await asyncio.wait_for(reader.readline(), timeout=1.0)
            except asyncio.TimeoutError:
                continue
            outcome = line.split()[1].decode() if line.startswith(b"HTTP/") and len(line.split()) > 1 else "closed"
            break
    except (ConnectionError, OSError):
        outcome = "closed"
    finally:
        writer.close()
    return outcome, time.perf_counter() - started


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MB, where /proc has it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def summary(latencies: list[float], answers: dict, wall: float, requests: int, concurrency: int) -> dict:
    ms = np.asarray(latencies) * 1000 if latencies else np.asarray([np.nan])
    return {
        "requests": requests,
        "concurrency": concurrency,
        "ok": len(latencies),
        "answers": dict(sorted(answers.items())),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
        **{f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)},
    }


def run_server(args: argparse.Namespace, weights: Path, max_batch: int, body: bytes, log_dir: Path) -> list[dict]:
    """One server: every concurrency, then the slow-client run; its peak memory on each row."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    process = start_server(port, weights, max_batch, args.backend, log_dir / f"server_batch{max_batch}.log",
                           args.server_timeout)
    rows = []
    try:
        wait_ready(base, process)
        for concurrency in args.concurrency:
            latencies, answers, wall = asyncio.run(load(base, body, args.requests, concurrency, args.output))
            rows.append({"case": "load", **summary(latencies, answers, wall, args.requests, concurrency)})
        if args.slow_clients:
            rows.append(asyncio.run(slow_case(args, port, base, body)))
        health = httpx.get(base + "/healthz", timeout=5).json()
        peak = peak_rss_mb(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    mean_batch = round(health["images_run"] / max(1, health["batches_run"]), 2)
    log_text = (log_dir / f"server_batch{max_batch}.log").read_text(errors="replace")
    log = {"server_log_lines": log_text.count("\n"), "server_log_tracebacks": log_text.count("Traceback")}
    for row in rows:
        row.update({"max_batch": max_batch, "backend": f"{health['backend']} {health['precision']}",
                    "server_peak_rss_mb": peak, "mean_batch": mean_batch, **log})
    return rows


async def slow_case(args: argparse.Namespace, port: int, base: str, body: bytes) -> dict:
    """Slow clients and the normal load at the same time."""
    give_up = 3 * args.server_timeout + 10
    slow = [asyncio.create_task(slow_client(port, body, give_up)) for _ in range(args.slow_clients)]
    await asyncio.sleep(1.0)
    latencies, answers, wall = await load(base, body, args.slow_requests, args.slow_concurrency, args.output)
    ended = await asyncio.gather(*slow)
    outcomes: dict[str, int] = {}
    for outcome, _ in ended:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {"case": f"{args.slow_clients} slow clients", **summary(latencies, answers, wall, args.slow_requests,
                                                                   args.slow_concurrency),
            "slow_outcomes": outcomes, "slow_cut_off_after_s": round(max(t for _, t in ended), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8], help="requests in flight (one run each)")
    parser.add_argument("--size", type=int, default=256, help="long side of the test photo in pixels")
    parser.add_argument("--output", default="alpha", choices=["alpha", "cutout", "composite"])
    parser.add_argument("--max-batch", type=int, nargs="+", default=[1], help="server --max-batch values to compare")
    parser.add_argument("--backend", default="auto", help="server --backend (default: auto)")
    parser.add_argument("--weights", type=Path, default=None, help="weights file (default: random weights)")
    parser.add_argument("--server-timeout", type=float, default=60.0, help="server --timeout in seconds")
    parser.add_argument("--slow-clients", type=int, default=0, help="clients trickling their body (0: no such run)")
    parser.add_argument("--slow-requests", type=int, default=50, help="normal requests during the slow run")
    parser.add_argument("--slow-concurrency", type=int, default=4, help="their concurrency")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/server_load.json"))
    args = parser.parse_args()
    if not 1 <= args.requests <= 2000 or not all(1 <= c <= 200 for c in args.concurrency) \
            or not 0 <= args.slow_clients <= 300:
        parser.error("keep the load bounded: --requests 1..2000, --concurrency 1..200, --slow-clients 0..300")

    body = test_image(args.size)
    with Image.open(io.BytesIO(body)) as img:
        width, height = img.size
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or random_weights(Path(tmp))
        rows = [row for batch in args.max_batch for row in run_server(args, weights, batch, body, Path(tmp))]

    print(f"POST /v1/matte?output={args.output}, {width}x{height} JPEG, {os.cpu_count()} CPU cores, "
          f"{platform.processor() or platform.machine()}, {time.strftime('%Y-%m-%d')}")
    print(f"{'case':>18} {'batch':>5} {'backend':>14} {'conc':>4} {'ok':>4} {'answers':>20} {'req/s':>6} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'peak MB':>7}")
    for row in rows:
        answers = ",".join(f"{k}:{v}" for k, v in row["answers"].items())
        print(f"{row['case']:>18} {row['max_batch']:>5} {row['backend']:>14} {row['concurrency']:>4} {row['ok']:>4} "
              f"{answers:>20} {row['requests_per_s']:>6} {row['p50_ms']:>7} {row['p95_ms']:>7} {row['p99_ms']:>7} "
              f"{row['server_peak_rss_mb']!s:>7}")
        if "slow_outcomes" in row:
            print(f"{'':>18} slow clients ended: {row['slow_outcomes']}, "
                  f"the last after {row['slow_cut_off_after_s']} s")
    report = {
        "benchmark": "server_load",
        "date": time.strftime("%Y-%m-%d"),
        "image": f"{width}x{height} JPEG",
        "output": args.output,
        "weights": str(args.weights or "random"),
        "server_timeout_s": args.server_timeout,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average_before": load_before,
        "load_average_after": round(os.getloadavg()[0], 2),
        "results": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    print(f"server log: {rows[-1]['server_log_lines']} lines, {rows[-1]['server_log_tracebacks']} tracebacks")
    unexpected = [row for row in rows if set(row["answers"]) - {"200", "503"} or row["server_log_tracebacks"]]
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
