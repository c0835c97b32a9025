"""The LiteRT backend (``--weights model.tflite``): fixed-size files, float and int8 tensors, one-line refusals.

The graphs are tiny hand-built ``.tflite`` files with MODNet's I/O contract (tests/tflite_graphs.py),
so these run wherever ai-edge-litert is installed, without the converter; the real export's parity
is tests/test_deploy_tflite.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed (pip install 'modnet-matting[litert]')")

from modnet_matting.cli.main import main  # noqa: E402
from modnet_matting.inference import load_model  # noqa: E402
from modnet_matting.inference.backends.litert import LiteRTBackend, fit  # noqa: E402
from modnet_matting.weights import CheckpointError, Preprocess, WeightsConfig  # noqa: E402
from tflite_graphs import expected_alpha, our_metadata, pixel_graph  # noqa: E402

CONFIG = WeightsConfig(preprocess=Preprocess(reference_size=64), card={"name": "tiny-graph"})


@pytest.fixture
def float_graph(tmp_path: Path) -> Path:
    return pixel_graph(tmp_path / "float.tflite", 32, 64, metadata=our_metadata(CONFIG.to_json(), "fp32"))


def test_runs_any_batch_size_through_its_fixed_size(float_graph: Path) -> None:
    batch = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 96)).astype(np.float32)
    out = LiteRTBackend(float_graph, threads=1).run(batch)
    assert out.shape == (2, 1, 64, 96)
    expected = np.stack([fit(expected_alpha(fit(image, 32, 64)), 64, 96) for image in batch])
    assert float(np.abs(out - expected).max()) < 1e-5


def test_int8_tensors_are_quantised_and_dequantised_with_their_own_scale(tmp_path: Path) -> None:
    backend = LiteRTBackend(pixel_graph(tmp_path / "int8.tflite", 32, 64, quantized=True), threads=1)
    assert backend.precision == "int8"
    batch = np.random.default_rng(1).uniform(-1, 1, (1, 3, 32, 64)).astype(np.float32)
    error = np.abs(backend.run(batch) - expected_alpha(batch[0])[None])
    assert float(error.max()) < 0.01  # an input step (1/127) through the weights plus an output step (1/256)


def test_load_model_takes_a_tflite_file_with_its_config(float_graph: Path) -> None:
    predictor = load_model(float_graph)
    assert predictor.backend.name == "litert" and predictor.config.card["name"] == "tiny-graph"
    alpha = predictor.predict(np.full((50, 70, 3), 200, np.uint8))
    assert alpha.shape == (50, 70) and 0.0 <= float(alpha.min()) <= float(alpha.max()) <= 1.0


def test_other_backends_and_precisions_are_refused_in_one_line(float_graph: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="runs on the litert backend"):
        load_model(float_graph, backend="openvino")
    with pytest.raises(ValueError, match="fp32 model, not int8"):
        load_model(float_graph, precision="int8")
    with pytest.raises(ValueError, match="litert backend runs .tflite files"):
        load_model("modnet-people", backend="litert")
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(CheckpointError, match="broken.tflite is not a usable TFLite model"):
        load_model(broken)


def test_cli_mattes_with_a_tflite_file(float_graph: Path, tmp_path: Path, capsys) -> None:
    import cv2

    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), np.full((40, 60, 3), 128, np.uint8))
    out = tmp_path / "out"
    assert main(["matte", str(photo), "-o", str(out), "--weights", str(float_graph)]) == 0
    assert cv2.imread(str(out / "in.alpha.png"), cv2.IMREAD_UNCHANGED).shape[:2] == (40, 60)
    assert main(["matte", str(photo), "-o", str(tmp_path / "b"), "--weights", str(float_graph),
                 "--backend", "onnx"]) == 2
    assert "runs on the litert backend" in capsys.readouterr().err


def test_a_missing_runtime_names_its_extra(float_graph: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # import ai_edge_litert now fails
    with pytest.raises(ValueError, match=r"pip install 'modnet-matting\[litert\]'"):
        load_model(float_graph)


def test_one_model_used_from_several_threads_gives_the_serial_mattes(float_graph: Path) -> None:
    """A loaded .tflite model shared by threads (the Dask path, a server) answers each call with its own matte."""
    from concurrent.futures import ThreadPoolExecutor

    predictor = load_model(float_graph)
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (48 + 8 * i, 80, 3), dtype=np.uint8) for i in range(12)]
    serial = [predictor.predict(image) for image in images]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            parallel = list(pool.map(predictor.predict, images))
            assert all(np.array_equal(a, b) for a, b in zip(serial, parallel))
