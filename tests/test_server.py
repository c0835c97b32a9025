"""HTTP API: outputs, backgrounds, limits and bad input, batching, the page's assets, ``modnet serve``."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import socket
import tempfile
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
import httpx  # noqa: E402

with warnings.catch_warnings():  # Starlette's notice about its test client's HTTP library
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from conftest import make_portrait, png_header_only  # noqa: E402
from modnet_matting.cli.main import main  # noqa: E402
from modnet_matting.inference import Predictor, TorchBackend  # noqa: E402
from modnet_matting.server import create_app  # noqa: E402
from modnet_matting.server.batcher import MicroBatcher, QueueFullError  # noqa: E402
from modnet_matting.weights import WeightsConfig, load_weights  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class HalfPredictor:
    """Alpha 1 on the left half, 0 on the right, so composites can be checked exactly."""

    def __init__(self, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.config = WeightsConfig(card={"source": "half test predictor"})
        self.backend = SimpleNamespace(name="fake", device="cpu")
        self.delay = delay
        self.gate = gate
        self.batch_sizes: list[int] = []

    def predict_rgb(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        self.batch_sizes.append(len(rgbs))
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.delay)
        alphas = []
        for rgb in rgbs:
            alpha = np.zeros(rgb.shape[:2], np.float32)
            alpha[:, : rgb.shape[1] // 2] = 1.0
            alphas.append(alpha)
        return alphas


def png_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return np.asarray(img)


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"], body
    return body["error"]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return make_portrait(96, 80)[0]


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(predictor=HalfPredictor())) as test_client:
        yield test_client


def post_photo(client: TestClient, data: bytes, query: str = "", **files: bytes) -> httpx.Response:
    uploads = {"file": ("photo.png", data, "image/png")}
    uploads.update({name: (f"{name}.png", value, "image/png") for name, value in files.items()})
    return client.post(f"/v1/matte{query}", files=uploads)


def test_alpha_output_is_a_grey_png_at_the_photo_size(client, photo):
    response = post_photo(client, png_bytes(photo), "?output=alpha")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    alpha = decode_png(response.content)
    assert alpha.shape == (96, 80)
    assert (alpha[:, :40] == 255).all() and (alpha[:, 40:] == 0).all()


def test_raw_body_gives_the_same_result_as_multipart(client, photo):
    raw = client.post("/v1/matte?output=alpha", content=png_bytes(photo), headers={"content-type": "image/png"})
    form = post_photo(client, png_bytes(photo), "?output=alpha")
    assert raw.status_code == 200 and raw.content == form.content


def test_jpeg_upload_is_accepted(client, photo):
    response = client.post("/v1/matte?output=alpha", content=png_bytes(photo, "JPEG"))
    assert response.status_code == 200 and decode_png(response.content).shape == (96, 80)


def test_cutout_is_rgba_with_the_matte_as_alpha(client, photo):
    response = post_photo(client, png_bytes(photo))  # cutout is the default output
    rgba = decode_png(response.content)
    assert rgba.shape == (96, 80, 4)
    assert (rgba[:, :40, 3] == 255).all() and (rgba[:, 40:, 3] == 0).all()
    assert np.array_equal(rgba[:, :40, :3], photo[:, :40])  # opaque pixels keep their colour


@pytest.mark.parametrize("color", ["#00ff00", "0f0", "0,255,0", "lime"])
def test_composite_over_a_colour(client, photo, color):
    response = client.post("/v1/matte", params={"output": "composite", "color": color}, content=png_bytes(photo))
    rgb = decode_png(response.content)
    assert rgb.shape == (96, 80, 3)
    assert (rgb[:, 40:] == [0, 255, 0]).all()
    assert np.array_equal(rgb[:, :40], photo[:, :40])


def test_composite_defaults_to_white(client, photo):
    rgb = decode_png(client.post("/v1/matte?output=composite", content=png_bytes(photo)).content)
    assert (rgb[:, 40:] == 255).all()


def test_composite_over_an_uploaded_image(client, photo):
    backdrop = np.full((30, 50, 3), (10, 20, 200), np.uint8)
    response = post_photo(client, png_bytes(photo), "?output=composite", background=png_bytes(backdrop))
    rgb = decode_png(response.content)
    assert rgb.shape == (96, 80, 3) and (rgb[:, 40:] == (10, 20, 200)).all()


def test_blurred_background_hides_the_person(client):
    photo = np.zeros((96, 80, 3), np.uint8)
    photo[:, :40] = 250  # the "person" (left half) is bright, the old background black
    rgb = decode_png(client.post("/v1/matte?output=composite&blur=true", content=png_bytes(photo)).content)
    assert rgb[:, 45:].max() < 30  # no bright halo of the person spread into the background


def test_json_output_has_every_image_as_base64(client, photo):
    plain = client.post("/v1/matte?output=json", content=png_bytes(photo)).json()
    assert (plain["width"], plain["height"], plain["background"], plain["composite"]) == (80, 96, "none", None)
    assert decode_png(base64.b64decode(plain["alpha"])).shape == (96, 80)
    assert decode_png(base64.b64decode(plain["cutout"])).shape == (96, 80, 4)
    blurred = client.post("/v1/matte?output=json&blur=1", content=png_bytes(photo)).json()
    assert blurred["background"] == "blur"
    assert decode_png(base64.b64decode(blurred["composite"])).shape == (96, 80, 3)


def test_two_backgrounds_at_once_are_refused(client, photo):
    response = client.post("/v1/matte?output=composite&color=red&blur=true", content=png_bytes(photo))
    assert response.status_code == 422 and error_of(response) == "ambiguous_background"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("?output=gif", "invalid_parameter"),
        ("?output=composite&color=notacolour", "bad_color"),
        ("?blur=maybe", "invalid_parameter"),
        ("?outptu=json", "invalid_parameter"),  # a typo was ignored: the answer was the default cut-out
        ("?output=alpha&output=json", "invalid_parameter"),  # which one?
    ],
)
def test_bad_parameters_are_422_with_a_json_error(client, photo, query, code):
    response = client.post(f"/v1/matte{query}", content=png_bytes(photo))
    assert response.status_code == 422 and error_of(response) == code


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"", 422, "no_image"),
        (b"this is not an image", 415, "not_an_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 415, "not_an_image"),
        ("truncated", 422, "corrupt_image"),
        (png_header_only(6_000, 5_000), 413, "too_many_pixels"),  # above the server's limit
        (png_header_only(100_000, 100_000), 413, "too_many_pixels"),  # above Pillow's bomb limit too
        (png_header_only(8, 3_000_000), 413, "side_too_long"),  # 24 MP, but no PNG encoder writes the answer
        (png_header_only(600_000, 40), 413, "side_too_long"),
    ],
)
def test_bad_uploads_get_a_json_error_and_the_server_keeps_serving(client, photo, body, status, code):
    if body == "truncated":
        body = png_bytes(photo)[:300]
    response = client.post("/v1/matte", content=body, headers={"content-type": "application/octet-stream"})
    assert response.status_code == status and error_of(response) == code
    assert client.get("/healthz").json()["status"] == "ok"
    assert post_photo(client, png_bytes(photo), "?output=alpha").status_code == 200


def test_tiny_image_is_422(client):
    response = client.post("/v1/matte", content=png_bytes(np.zeros((1, 1, 3), np.uint8)))
    assert response.status_code == 422 and error_of(response) == "too_small"


def test_multipart_without_a_file_field_is_422(client, photo):
    response = client.post("/v1/matte", files={"background": ("a.png", png_bytes(photo), "image/png")})
    assert response.status_code == 422 and error_of(response) == "no_image"


def _form(*parts: tuple[str, str | None, bytes], boundary: str = "b0undary") -> tuple[bytes, dict]:
    """A multipart body built by hand, so parts without a filename and broken bodies can be sent."""
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.parametrize("size", [(96, 80), (700, 600)])  # the larger one is over 1 MB as BMP
def test_a_part_without_a_filename_is_the_image_bytes(client, photo, size):
    """curl -F 'file=<photo.jpg' sends no filename: it was decoded as text (415, or 400 above 1 MB)."""
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8) if size != (96, 80) else photo
    body, headers = _form(("file", None, png_bytes(image, "BMP")))
    response = client.post("/v1/matte?output=alpha", content=body, headers=headers)
    assert response.status_code == 200
    with_name = post_photo(client, png_bytes(image, "BMP"), "?output=alpha")
    assert response.content == with_name.content


@pytest.mark.parametrize(
    ("parts", "cut", "status", "code"),
    [
        ([("file", "a.png", b"PHOTO")], 40, 400, "bad_multipart"),  # truncated mid-part
        ([("file", "a.png", b"PHOTO"), ("file", "b.png", b"PHOTO")], 0, 422, "duplicate_field"),
        ([("file", "a.png", b"PHOTO"), ("mask", "m.png", b"PHOTO")], 0, 422, "unknown_field"),
    ],
)
def test_broken_or_conflicting_forms_are_refused(client, photo, parts, cut, status, code):
    parts = [(name, filename, png_bytes(photo) if data == b"PHOTO" else data) for name, filename, data in parts]
    body, headers = _form(*parts)
    response = client.post("/v1/matte", content=body[: len(body) - cut], headers=headers)
    assert response.status_code == status and error_of(response) == code


@pytest.mark.parametrize("query", ["?output=alpha&color=red", "?output=cutout&blur=true"])
def test_a_background_with_an_output_that_has_none_is_refused(client, photo, query):
    response = client.post(f"/v1/matte{query}", content=png_bytes(photo))
    assert response.status_code == 422 and error_of(response) == "unused_background"
    upload = post_photo(client, png_bytes(photo), "?output=alpha", background=png_bytes(photo))
    assert upload.status_code == 422 and error_of(upload) == "unused_background"


def test_background_that_is_not_an_image_is_415(client, photo):
    response = post_photo(client, png_bytes(photo), "?output=composite", background=b"nope")
    assert response.status_code == 415 and "background" in response.json()["detail"]


def test_upload_and_pixel_limits_are_413(photo):
    app = create_app(predictor=HalfPredictor(), max_upload_bytes=20_000, max_pixels=5_000)
    with TestClient(app) as small:
        too_big = small.post("/v1/matte", content=b"\x00" * 20_001)
        assert too_big.status_code == 413 and error_of(too_big) == "payload_too_large"
        chunked = small.post("/v1/matte", content=iter([b"\x00" * 15_000, b"\x00" * 15_000]))  # no Content-Length
        assert chunked.status_code == 413 and error_of(chunked) == "payload_too_large"
        too_many = small.post("/v1/matte", content=png_bytes(photo))  # 96 x 80 = 7680 pixels
        assert too_many.status_code == 413 and error_of(too_many) == "too_many_pixels"
        assert small.post("/v1/matte?output=alpha", content=png_bytes(photo[:50, :50])).status_code == 200


def test_large_multipart_upload_leaves_no_temporary_file(photo, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    big = np.random.default_rng(0).integers(0, 256, (800, 800, 3), dtype=np.uint8)  # ~1.9 MB as BMP
    with TestClient(create_app(predictor=HalfPredictor())) as test_client:
        response = post_photo(test_client, png_bytes(big, "BMP"), "?output=alpha")
    assert response.status_code == 200
    assert list(tmp_path.iterdir()) == []


def test_slow_request_times_out_with_504_and_later_requests_still_work(photo):
    predictor = HalfPredictor(delay=0.6)
    with TestClient(create_app(predictor=predictor, timeout_s=0.2)) as test_client:
        slow = test_client.post("/v1/matte", content=png_bytes(photo))
        assert slow.status_code == 504 and error_of(slow) == "timeout"
        predictor.delay = 0.0
        time.sleep(0.5)  # let the abandoned batch finish
        assert test_client.post("/v1/matte?output=alpha", content=png_bytes(photo)).status_code == 200


def _gather_posts(app, bodies: list[bytes]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as http:
            return await asyncio.gather(*(http.post("/v1/matte?output=alpha", content=body) for body in bodies))

    return asyncio.run(go())


def test_concurrent_requests_are_batched(photo):
    predictor = HalfPredictor()
    app = create_app(predictor=predictor, max_batch=8, max_wait_ms=300)
    responses = _gather_posts(app, [png_bytes(photo)] * 6)
    assert [r.status_code for r in responses] == [200] * 6
    assert sum(predictor.batch_sizes) == 6 and max(predictor.batch_sizes) > 1


def test_full_queue_is_503_with_retry_after(photo):
    gate = threading.Event()
    predictor = HalfPredictor(gate=gate)
    app = create_app(predictor=predictor, max_batch=1, max_wait_ms=0, queue_size=1)
    threading.Timer(1.5, gate.set).start()  # release the worker once the queue has overflowed
    responses = _gather_posts(app, [png_bytes(photo)] * 4)
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 503 in statuses, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert error_of(busy) == "busy" and busy.headers["retry-after"] == "1"


def test_batcher_refuses_when_full():
    gate = threading.Event()

    def predict(rgbs):
        gate.wait(5)
        return [np.zeros(rgb.shape[:2], np.float32) for rgb in rgbs]

    async def go() -> None:
        batcher = MicroBatcher(predict, max_batch=1, max_wait_s=0, queue_size=1)
        image = np.zeros((4, 4, 3), np.uint8)
        first = asyncio.ensure_future(batcher.submit(image))
        await asyncio.sleep(0.05)  # the worker takes it and blocks
        second = asyncio.ensure_future(batcher.submit(image))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFullError):
            await batcher.submit(image)
        gate.set()
        assert (await first).shape == (4, 4) and (await second).shape == (4, 4)
        await batcher.stop()
        batcher.close()

    asyncio.run(go())


def test_predictor_failure_is_a_500_json_error_and_not_fatal(photo):
    class Broken(HalfPredictor):
        def predict_rgb(self, rgbs):
            raise RuntimeError("backend exploded")

    with TestClient(create_app(predictor=Broken()), raise_server_exceptions=False) as test_client:
        response = test_client.post("/v1/matte", content=png_bytes(photo))
        assert response.status_code == 500 and error_of(response) == "internal_error"
        assert test_client.get("/healthz").status_code == 200


def test_real_model_from_a_weights_file(random_weights, photo):
    model, config = load_weights(random_weights)
    small = replace(config, preprocess=replace(config.preprocess, reference_size=64))
    predictor = Predictor(TorchBackend(model, "cpu"), small)
    with TestClient(create_app(predictor=predictor)) as test_client:
        response = test_client.post("/v1/matte?output=json&color=blue", content=png_bytes(photo))
        assert response.status_code == 200
        alpha = decode_png(base64.b64decode(response.json()["alpha"]))
        assert alpha.shape == (96, 80) and alpha.dtype == np.uint8
        assert test_client.get("/healthz").json()["images_run"] == 1


def test_an_extreme_strip_runs_under_the_network_pixel_cap(random_weights):
    """An 8x300,000 PNG is small on the wire; the network must still run at most max_pixels (sides over
    30,000 px are refused now: the longest allowed strip)."""
    model, config = load_weights(random_weights)
    shapes: list[tuple[int, ...]] = []

    class Recording(TorchBackend):
        def run(self, batch):
            shapes.append(batch.shape)
            return super().run(batch)

    predictor = Predictor(Recording(model, "cpu"), config, max_pixels=64 * 1024)
    with TestClient(create_app(predictor=predictor)) as test_client:
        response = test_client.post("/v1/matte?output=alpha", content=png_bytes(np.zeros((8, 30_000, 3), np.uint8)))
    assert response.status_code == 200 and decode_png(response.content).shape == (8, 30_000)
    assert shapes and all(height * width <= 64 * 1024 for *_, height, width in shapes)


def test_create_app_loads_weights_once_by_path(random_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("MODNET_HOME", str(tmp_path))
    app = create_app(weights=random_weights, device="cpu", backend="torch", precision="fp32")
    with TestClient(app) as test_client:
        health = test_client.get("/healthz").json()
    assert health["weights"] == random_weights.name and health["device"] == "cpu"
    assert (health["backend"], health["precision"]) == ("torch", "fp32")
    assert app.state.batcher.max_batch == 1  # no batching by default on the CPU


def test_micro_batches_are_one_network_call(random_weights):
    app = create_app(weights=random_weights, device="cpu", backend="torch", precision="fp32", max_batch=6)
    assert app.state.batcher.max_batch == 6 and app.state.predictor.batch_size >= 6


def test_default_batch_is_larger_on_a_gpu():
    gpu = HalfPredictor()
    gpu.backend = SimpleNamespace(name="torch", device="cuda:0")
    assert create_app(predictor=gpu).state.batcher.max_batch == 8
    assert create_app(predictor=HalfPredictor()).state.batcher.max_batch == 1


def test_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'name="viewport"' in page.text and 'id="drop-zone"' in page.text
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    local = [a for a in assets if not a.startswith("data:")]
    assert "static/app.js" in local and "static/style.css" in local
    for asset in local:
        assert "//" not in asset, f"external reference {asset}"
        if asset.startswith("static/"):
            served = client.get("/" + asset)
            assert served.status_code == 200
            assert not re.search(r"https?://", served.text), f"{asset} refers to another site"


def test_openapi_spec_is_valid(client):
    """It referenced a MatteResult schema that did not exist."""
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").json()
    validate(spec)
    result = spec["components"]["schemas"]["MatteResult"]
    assert {"width", "height", "alpha", "cutout", "composite"} <= set(result["properties"])


def test_openapi_documents_the_upload(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/matte"]["post"]
    content = operation["requestBody"]["content"]
    assert "file" in content["multipart/form-data"]["schema"]["properties"]
    assert "image/png" in content
    assert {"200", "403", "413", "415", "422", "503", "504"} <= set(operation["responses"])
    assert "Retry-After" in operation["responses"]["503"]["headers"]  # what a client should wait
    assert client.get("/docs").status_code == 200


def test_unknown_path_is_a_json_404(client):
    response = client.get("/v2/nothing")
    assert response.status_code == 404 and error_of(response) == "http_404"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_with_missing_weights_is_a_one_line_error(tmp_path, capsys):
    code = main(["serve", "--weights", str(tmp_path / "missing.safetensors"), "--port", str(_free_port())])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("modnet: error:") and err.count("\n") == 1


def test_serve_on_a_busy_port_is_a_one_line_error(random_weights, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code = main(["serve", "--weights", str(random_weights), "--port", str(busy.getsockname()[1])])
    err = capsys.readouterr().err
    assert code == 2 and "cannot listen" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "option", ["--max-upload-mb", "--max-pixels-in-flight", "--max-connections", "--keep-alive", "--shutdown-timeout"]
)
def test_serve_rejects_bad_limits(capsys, option):
    assert main(["serve", option, "0"]) == 2
    assert f"{option} must be" in capsys.readouterr().err


def test_serve_hands_its_connection_limits_to_uvicorn(random_weights, monkeypatch):
    import uvicorn

    from modnet_matting.server import protocol

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    for name in ("MAX_CONNECTIONS", "HEADER_TIMEOUT_S"):  # configure() sets them for the process: restore after
        monkeypatch.setattr(protocol, name, getattr(protocol, name))
    argv = ["serve", "--weights", str(random_weights), "--port", "0", "--max-connections", "7", "--keep-alive", "2",
            "--shutdown-timeout", "3", "--backend", "torch", "--header-timeout", "4"]
    assert main(argv) == 0
    assert (seen["timeout_keep_alive"], seen["timeout_graceful_shutdown"]) == (2, 3)
    assert seen["http"] is protocol.GuardedH11Protocol and seen["limit_concurrency"] is None
    assert (protocol.MAX_CONNECTIONS, protocol.HEADER_TIMEOUT_S) == (7, 4)


def test_static_files_ship_with_the_package():
    import modnet_matting.server as server

    static = Path(server.__file__).parent / "static"
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in static.iterdir()}
