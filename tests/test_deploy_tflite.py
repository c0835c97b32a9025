"""``modnet export --format tflite``: LiteRT runs the file as PyTorch runs the network; layout and config inside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from modnet_matting.cli.main import main

pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install 'modnet-matting[tflite]')")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")

from modnet_matting.deploy.tflite import read_tflite_metadata, run_tflite  # noqa: E402
from modnet_matting.weights import load_weights  # noqa: E402

FP32_MAX = 1e-4


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_litert_matches_pytorch_and_the_file_says_how_to_feed_it(layout: str, random_weights: Path,
                                                                  tmp_path: Path, capsys) -> None:
    out = tmp_path / f"m-{layout}.tflite"
    assert main(["export", "--format", "tflite", "--weights", str(random_weights), "--size", "96x128",
                 "--layout", layout, "-o", str(out)]) == 0
    assert "max |export - pytorch| at 128x96" in capsys.readouterr().err
    model, config = load_weights(random_weights)
    batch = np.random.default_rng(1).uniform(-1, 1, (2, 3, 128, 96)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval().forward_matte(torch.from_numpy(batch)).numpy()
    assert float(np.abs(run_tflite(out, batch) - expected).max()) <= FP32_MAX
    metadata = read_tflite_metadata(out)
    io = json.loads(metadata["modnet_io"])
    shape = [1, 128, 96, 3] if layout == "nhwc" else [1, 3, 128, 96]
    assert io["input"]["shape"] == shape and io["input"]["layout"] == layout and io["output"]["name"] == "alpha"
    assert json.loads(metadata["modnet_config"])["card"] == config.card


def test_tflite_options_are_checked(random_weights: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", "--format", "tflite", "--weights", str(random_weights), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "NAME.tflite" in capsys.readouterr().err
    assert main(["export", "--format", "onnx", "--layout", "nchw", "-o", str(tmp_path / "m.onnx")]) == 2
    assert "--layout is for --format tflite" in capsys.readouterr().err
