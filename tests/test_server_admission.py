"""Admission control of the server: a pixel budget, and no work for clients that have left."""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from PIL import Image  # noqa: E402

from modnet_matting.server import create_app  # noqa: E402
from modnet_matting.server.admission import ClientGone, PixelBudget, unless_disconnected  # noqa: E402
from test_server import HalfPredictor  # noqa: E402


def _png(height: int = 64, width: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_budget_admits_by_pixels_not_by_requests() -> None:
    async def go() -> list[str]:
        budget, log = PixelBudget(100), []

        async def hold(name: str, pixels: int, seconds: float) -> None:
            async with budget.hold(pixels):
                log.append(f"{name}+")
                await asyncio.sleep(seconds)
                log.append(f"{name}-")

        await asyncio.gather(hold("a", 40, 0.05), hold("b", 40, 0.05), hold("big", 90, 0.01), hold("huge", 10**9, 0))
        assert budget.in_flight == 0
        return log

    log = asyncio.run(go())
    assert log[:2] == ["a+", "b+"]  # two small ones side by side
    assert log.index("big+") > max(log.index("a-"), log.index("b-"))  # the big one waited for both
    assert log.index("huge+") > log.index("big-")  # more than the whole budget: runs alone, never refused


def test_a_disconnect_cancels_the_work() -> None:
    async def go() -> bool:
        cancelled = asyncio.Event()

        async def work() -> str:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "done"

        async def receive() -> dict:
            await asyncio.sleep(0.05)
            return {"type": "http.disconnect"}

        with pytest.raises(ClientGone):
            await unless_disconnected(receive, work())
        return cancelled.is_set()

    assert asyncio.run(go())


async def _post(app, body: bytes, leave_after: float | None) -> int:
    """One ASGI request; the client disconnects ``leave_after`` seconds after sending its body."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600 if leave_after is None else leave_after)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/matte", "raw_path": b"/v1/matte", "query_string": b"output=alpha", "root_path": "",
        "headers": [(b"content-type", b"image/png"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def test_a_queued_request_whose_client_left_never_reaches_the_network() -> None:
    """Work went on after the client was gone: 7.1 CPU-seconds for nobody."""
    gate = threading.Event()
    predictor = HalfPredictor(gate=gate)
    app = create_app(predictor=predictor)

    async def go() -> tuple[int, int]:
        first = asyncio.ensure_future(_post(app, _png(), leave_after=None))
        await asyncio.sleep(0.3)  # the first request holds the network (blocked on the gate)
        second = await _post(app, _png(), leave_after=0.1)  # queued behind it, then its client leaves
        gate.set()
        return await first, second

    assert asyncio.run(go()) == (200, 499)
    assert predictor.batch_sizes == [1]


def test_an_image_larger_than_the_budget_still_runs() -> None:
    app = create_app(predictor=HalfPredictor(), max_pixels_in_flight=100)
    assert asyncio.run(_post(app, _png(), leave_after=None)) == 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _serving(random_weights, log=subprocess.DEVNULL, *options: str):  # noqa: ANN001, ANN202
    """``modnet serve`` in a subprocess on a free loopback port, ready; yields (process, port)."""
    port = _free_port()
    argv = [sys.executable, "-m", "modnet_matting.cli.main", "serve", "--port", str(port), "--weights",
            str(random_weights), "--backend", "torch", *options]
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT if log is not subprocess.DEVNULL else log)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        yield server, port
    finally:
        server.kill()
        server.wait(timeout=20)


def test_sigterm_stops_the_server_in_bounded_time_with_a_slow_upload(random_weights, tmp_path) -> None:
    """A half-sent upload must not keep a stopping server alive (uvicorn waits forever by default), and
    the upload cut by the stop is one 499 line in the log: no 500, no traceback."""
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log, _serving(random_weights, log, "--shutdown-timeout", "2") as (server, port):
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(f"POST /v1/matte HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/png\r\n"
                         "Content-Length: 1000000\r\n\r\n".encode() + b"\0" * 1000)
            time.sleep(0.3)
            server.send_signal(signal.SIGTERM)
            for _ in range(10):  # the upload keeps arriving while the server stops
                with contextlib.suppress(OSError):
                    slow.sendall(b"\0" * 1000)
                time.sleep(0.1)
            server.wait(timeout=20)  # raises if the slow upload holds it open
    text = log_path.read_text(errors="replace")
    assert '"POST /v1/matte HTTP/1.1" 499' in text
    assert "Traceback" not in text and " 500" not in text


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc for the process's memory")
def test_with_workers_the_supervising_process_holds_no_model(random_weights) -> None:
    """``--workers 2``: the parent only supervises; it checked the weights in a child and keeps no PyTorch."""
    with _serving(random_weights, subprocess.DEVNULL, "--workers", "2") as (server, port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
        assert _rss_mb(server.pid) < 150  # 373 MB when it loaded the model itself; ~47 MB without PyTorch


def test_with_workers_bad_weights_are_one_line_before_any_worker_starts(tmp_path) -> None:
    run = subprocess.run([sys.executable, "-m", "modnet_matting.cli.main", "serve", "--workers", "2", "--port",
                          str(_free_port()), "--weights", str(tmp_path / "absent.safetensors")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert run.stderr.strip().count("\n") == 0 and "absent.safetensors" in run.stderr and "Traceback" not in run.stderr


HEADS = {  # built in the test: a huge parameter would become the test id, which subprocesses inherit
    "a 200 KB request line": lambda: b"GET /healthz?" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "a 1 MB header": lambda: b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 1_000_000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("head", sorted(HEADS))
def test_an_oversized_request_head_gets_a_status_and_one_log_line(head: str, random_weights, tmp_path) -> None:
    """Answered 400 by uvicorn's parser (it has no 414/431), not a reset, with one short warning."""
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log, _serving(random_weights, log) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            try:
                client.sendall(HEADS[head]())
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before the whole head is sent
            answer = client.recv(256)
        time.sleep(0.3)
    text = log_path.read_text(errors="replace")
    assert answer.startswith(b"HTTP/1.1 400")
    assert text.count("Invalid HTTP request received") == 1 and "Traceback" not in text
    assert max(len(line) for line in text.splitlines()) < 300


KEY = "k3y-for-the-tests-0123"


@pytest.fixture(scope="module")
def guarded():
    from fastapi.testclient import TestClient

    app = create_app(predictor=HalfPredictor(), allowed_hosts=["127.0.0.1", "localhost"],
                     cors_origins=["https://app.example"], api_key=KEY)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


def test_an_api_key_is_required_and_compared_exactly(guarded) -> None:
    assert guarded.get("/healthz").json()["api_key_required"] is True
    for headers in ({}, {"X-API-Key": KEY[:-1]}, {"X-API-Key": KEY + "x"}):
        response = guarded.post("/v1/matte?output=alpha", content=_png(), headers=headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert guarded.post("/v1/matte?output=alpha", content=_png(), headers={"X-API-Key": KEY}).status_code == 200


def test_other_host_names_are_refused(guarded) -> None:
    """DNS rebinding: a page on evil.example that resolves to 127.0.0.1 sends Host: evil.example."""
    response = guarded.post("/v1/matte", content=_png(), headers={"Host": "evil.example", "X-API-Key": KEY})
    assert response.status_code == 400 and response.json()["error"] == "invalid_host"  # JSON like every error
    assert guarded.get("/healthz", headers={"Host": "localhost:8000"}).status_code == 200


def test_cors_answers_only_the_named_origins(guarded) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    allowed = guarded.options("/v1/matte", headers={"Origin": "https://app.example", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = guarded.options("/v1/matte", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    assert other.status_code == 400 and other.json()["error"] == "cors_refused"


def test_pages_of_other_origins_cannot_make_the_server_work(guarded) -> None:
    """A form POST from any web page is sent without a preflight: refused before its body is read."""
    headers = {"X-API-Key": KEY, "Content-Type": "text/plain"}
    body = _png()
    before = guarded.get("/healthz").json()["images_run"]
    evil = guarded.post("/v1/matte?output=alpha", content=body, headers={**headers, "Origin": "https://evil.example"})
    assert evil.status_code == 403 and evil.json()["error"] == "origin_not_allowed"
    assert guarded.get("/healthz").json()["images_run"] == before  # no work was done for it
    for origin in ("https://app.example", "http://127.0.0.1:8000", None):  # --cors-origin, its own page, a script
        sent = {**headers, **({"Origin": origin} if origin else {})}
        assert guarded.post("/v1/matte?output=alpha", content=body, headers=sent).status_code == 200, origin


@pytest.mark.parametrize("origin", ["https://app.example/", "https://app.example/page", "app.example", "null"])
def test_a_cors_origin_that_could_never_match_is_a_one_line_error(origin: str, capsys) -> None:
    from modnet_matting.cli.main import main

    assert main(["serve", "--cors-origin", origin]) == 2
    assert "scheme://host[:port]" in capsys.readouterr().err


def test_query_values_other_than_the_apis_own_are_not_logged() -> None:
    from modnet_matting.server.logs import redact_query

    redacted = redact_query("/v1/matte?output=alpha&api_key=s3cret&token=t")
    assert redacted == "/v1/matte?output=alpha&api_key=***&token=***"
    assert redact_query("/healthz") == "/healthz"


def test_no_cors_headers_by_default() -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(predictor=HalfPredictor())) as client:
        response = client.post("/v1/matte?output=alpha", content=_png(), headers={"Origin": "https://evil.example"})
        assert response.status_code == 403 and "access-control-allow-origin" not in response.headers
        assert client.post("/v1/matte?output=alpha", content=_png()).status_code == 200
        assert client.get("/healthz").json()["api_key_required"] is False


def test_serve_defaults_the_host_list_to_the_bound_address(random_weights, monkeypatch) -> None:
    import uvicorn

    from modnet_matting.cli.main import main
    from modnet_matting.server import app as server_app

    seen = {}
    real = server_app.create_app
    monkeypatch.setattr(server_app, "create_app", lambda **options: seen.update(options) or real(**options))
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    monkeypatch.setenv("MODNET_API_KEY", KEY)
    assert main(["serve", "--weights", str(random_weights), "--port", "0", "--backend", "torch"]) == 0
    assert "127.0.0.1" in seen["allowed_hosts"] and "localhost" in seen["allowed_hosts"]
    assert seen["api_key"] == KEY and seen["cors_origins"] == []
    assert main(["serve", "--api-key", "short", "--port", "0"]) == 2


def test_an_aborted_upload_is_a_quiet_499(caplog) -> None:
    """A client that hung up mid-body was an ERROR with a traceback (500 from ClientDisconnect); then it left
    no line at all (uvicorn logs nothing for a client that is gone), though the docs promise a 499 line."""
    app = create_app(predictor=HalfPredictor())
    messages = [{"type": "http.request", "body": b"\x89PNG partial", "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/matte", "raw_path": b"/v1/matte", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"image/png"), (b"content-length", b"100000")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }
    with caplog.at_level("INFO", logger="uvicorn.access"):
        asyncio.run(app(scope, receive, send))
    assert next(m["status"] for m in sent if m["type"] == "http.response.start") == 499
    lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert lines == ['127.0.0.1:5000 - "POST /v1/matte HTTP/1.1" 499']


def test_the_access_log_cuts_long_request_lines() -> None:
    """A 100 KB query string was written whole into the access log."""
    import logging

    from uvicorn.logging import AccessFormatter

    from modnet_matting.server.logs import MAX_LOGGED_PATH, ShortRequestLines, log_config

    path = "/v1/matte?color=" + "x" * 100_000
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "POST", path, "1.1", 422), None)
    assert ShortRequestLines().filter(record)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(record)
    assert len(line) < MAX_LOGGED_PATH + 100 and "[100016 chars]" in line and line.endswith("422 Unprocessable Entity")
    assert log_config()["handlers"]["access"]["filters"] == ["short_request_lines"]


def _read_all(sock: socket.socket, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit_s`` passes)."""
    sock.settimeout(limit_s)
    data = b""
    with contextlib.suppress(TimeoutError, OSError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_idle_and_slow_headed_connections_are_closed_and_cannot_lock_out_requests(random_weights) -> None:
    """260 silent connections held all 256 slots for ever: every request, /healthz too, got 503."""
    with _serving(random_weights, subprocess.DEVNULL, "--header-timeout", "1.5", "--max-connections", "8") as (_, port):
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        time.sleep(0.2)
        started = time.monotonic()
        reply = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert reply.status == 200 and time.monotonic() - started < 1.0  # the oldest idle ones made room
        answer = _read_all(idle[-1], 5)  # a silent connection: a JSON 408, then closed
        assert answer.startswith(b"HTTP/1.1 408") and b'"error": "header_timeout"' in answer
        with socket.create_connection(("127.0.0.1", port)) as slow:  # one header line now and then
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")
            started = time.monotonic()
            answer = b""
            for i in range(8):
                with contextlib.suppress(OSError):
                    slow.sendall(f"X-Slow-{i}: 1\r\n".encode())
                slow.settimeout(0.4)
                with contextlib.suppress(TimeoutError, OSError):
                    answer += slow.recv(65536)
                if answer:
                    break
            assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3.5
        for sock in idle:
            sock.close()


def test_a_body_with_both_content_length_and_transfer_encoding_closes_the_connection(random_weights) -> None:
    """RFC 9112 6.3: a request smuggled behind such a body was answered."""
    with _serving(random_weights) as (_, port), socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v1/matte HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        started = time.monotonic()
        answer = _read_all(sock, 10)
    assert answer.count(b"HTTP/1.1 ") == 1 and time.monotonic() - started < 5  # answered once, then closed


def test_a_timed_out_request_keeps_its_pixels_until_its_thread_returns_and_starts_no_new_stage() -> None:
    """A 504 released the pixel budget while the thread still ran (2.3 GB after the answer), and work went on."""
    from concurrent.futures import ThreadPoolExecutor

    from modnet_matting.server.admission import PixelBudget, Stages, Stopped

    async def go() -> list[str]:
        budget, pool, events = PixelBudget(100), ThreadPoolExecutor(2), []
        stages = Stages(pool)
        release = threading.Event()

        def slow_step() -> None:
            release.wait(5)
            events.append("step 1 done")
            stages.check()  # the boundary: raises, as the request was abandoned
            events.append("step 2 ran")

        async def request() -> None:
            async with budget.hold(60, stages):
                await stages.run(slow_step)
                await stages.run(lambda: events.append("next stage ran"))

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(request(), 0.2)  # the server answers 504 here
        events.append(f"after the answer: {budget.in_flight} pixels held")
        release.set()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if budget.in_flight == 0:
                break
        events.append(f"after the thread: {budget.in_flight} pixels held")
        with pytest.raises(Stopped):
            await stages.run(lambda: None)
        pool.shutdown()
        return events

    assert asyncio.run(go()) == ["after the answer: 60 pixels held", "step 1 done", "after the thread: 0 pixels held"]


def test_the_budget_charges_what_each_output_really_uses() -> None:
    """~30 bytes a pixel were assumed, ~80 used by a cut-out: three 5000x5000 cut-outs took ~4.6 GB at once."""
    from modnet_matting.cli.main import build_parser
    from modnet_matting.server.app import BYTES_PER_PIXEL, DEFAULT_MAX_PIXELS_IN_FLIGHT, request_cost

    assert request_cost("cutout", 1000) == request_cost("composite", 1000) == request_cost("json", 1000) == 1000
    assert request_cost("alpha", 1000) == 200  # the alpha alone needs no foreground estimation
    assert request_cost("composite", 1000, 1000) == 1200  # and a background image its own pixels
    assert request_cost("alpha", 1) == 1
    assert DEFAULT_MAX_PIXELS_IN_FLIGHT * BYTES_PER_PIXEL["cutout"] <= 1.7e9
    assert request_cost("cutout", 5000 * 5000) > DEFAULT_MAX_PIXELS_IN_FLIGHT  # such a cut-out runs alone
    serve = build_parser().parse_args(["serve"])
    assert serve.max_pixels_in_flight == DEFAULT_MAX_PIXELS_IN_FLIGHT
