"""`modnet bench`: report structure (never timings), MAC counting, bad arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modnet_matting.cli.main import main
from modnet_matting.evaluate.speed import count_macs, count_parameters, network_shape
from modnet_matting.model import MODNet


def test_parameters_and_macs_match_the_spec() -> None:
    model = MODNet().eval()
    assert count_parameters(model) == 6_487_075
    assert count_macs(model, 512, 512) / 1e9 == pytest.approx(15.47, abs=0.005)
    # MACs of a convolutional network scale with the pixel count
    assert count_macs(model, 64, 128) == pytest.approx(count_macs(model, 512, 512) / 32, rel=0.02)


def test_sizes_round_up_to_multiples_of_32() -> None:
    assert network_shape(1080, 1920) == (1088, 1920)
    assert network_shape(512, 512) == (512, 512)


def test_bench_writes_the_json_report(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    out = tmp_path / "bench.json"
    code = main(["bench", "--sizes", "64x64,50x70", "--precision", "fp32,fp16", "--repeat", "1", "--warmup", "0",
                 "--device", "cpu", "--threads", "2", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "median" in captured.out and "6,487,075 parameters" in captured.out
    report = json.loads(out.read_text())
    assert set(report) == {"machine", "model", "settings", "results"}
    assert report["machine"]["device"] == "cpu" and report["machine"]["cpu_count"] >= 1
    assert report["model"]["parameters"] == 6_487_075
    assert set(report["model"]["macs"]) == {"64x64", "64x96"}
    assert report["settings"] == {"repeat": 1, "warmup": 0, "statistic": "median"}
    rows = report["results"]
    assert [(r["precision"], r["requested"], r["height"], r["width"]) for r in rows] == [
        ("fp32", "64x64", 64, 64), ("fp32", "50x70", 64, 96), ("fp16", "64x64", 64, 64), ("fp16", "50x70", 64, 96),
    ]
    for row in rows[:2]:
        assert row["error"] is None and row["timer"] == "perf_counter" and row["runs_as"] == "torch fp32"
        assert row["median_ms"] > 0 and row["images_per_s"] == pytest.approx(1000 / row["median_ms"])
    for row in rows[2:]:  # fp16 is refused on the CPU: recorded, the others still ran
        assert row["median_ms"] is None and "fp16" in row["error"]


def test_bad_sizes_are_one_line_errors(capsys) -> None:
    assert main(["bench", "--sizes", "512by512"]) == 2
    assert main(["bench", "--batch", "0"]) == 2
    err = capsys.readouterr().err
    assert "512x512 (height x width)" in err and "Traceback" not in err


def test_litert_is_timed_with_one_file_per_size(tmp_path: Path, monkeypatch, capsys) -> None:
    """``--backends litert`` converts per size and precision (the converter is faked by a tiny graph here)."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    import modnet_matting.deploy.tflite as tflite
    from tflite_graphs import pixel_graph

    made = []

    def fake_cached(model, config, size, precision):  # noqa: ANN001, ANN202 - the converter's signature
        if precision != "fp32":
            raise ValueError(f"a TFLite export is fp32, fp16 or int8, not {precision}")
        made.append(size)
        return pixel_graph(tmp_path / f"{size[0]}x{size[1]}.tflite", *size)

    monkeypatch.setattr(tflite, "cached_tflite", fake_cached)
    out = tmp_path / "bench.json"
    assert main(["bench", "--backends", "torch,litert", "--precision", "fp32,bf16", "--sizes", "64x64,50x70",
                 "--repeat", "1", "--warmup", "0", "--device", "cpu", "--json", str(out)]) == 0
    rows = [r for r in json.loads(out.read_text())["results"] if r["backend"] == "litert"]
    assert made == [(64, 64), (64, 96)]
    assert [(r["precision"], r["height"], r["width"], r["runs_as"]) for r in rows if r["error"] is None] == [
        ("fp32", 64, 64, "litert fp32"), ("fp32", 64, 96, "litert fp32")]
    assert all("not bf16" in r["error"] for r in rows if r["precision"] == "bf16")
    assert "litert" in capsys.readouterr().out


def test_exports_are_timed_on_their_own_runtime_without_converting(tmp_path: Path, random_weights: Path) -> None:
    """`bench --weights m.onnx` was refused, and a .tflite needed the converter to be timed."""
    onnx_file = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--weights", str(random_weights), "-o", str(onnx_file),
                 "--no-check"]) == 0
    report_file = tmp_path / "onnx.json"
    assert main(["bench", "--weights", str(onnx_file), "--sizes", "64x96", "--repeat", "1", "--warmup", "0",
                 "--json", str(report_file)]) == 0
    (row,) = json.loads(report_file.read_text())["results"]
    assert not row["error"] and row["backend"] == "auto" and row["median_ms"] > 0
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    from modnet_matting.weights import WeightsConfig
    from tflite_graphs import our_metadata, pixel_graph

    tflite = pixel_graph(tmp_path / "m.tflite", 32, 64, metadata=our_metadata(WeightsConfig().to_json(), "fp32"))
    report_file = tmp_path / "tflite.json"
    assert main(["bench", "--weights", str(tflite), "--repeat", "1", "--warmup", "0", "--json",
                 str(report_file)]) == 0
    (row,) = json.loads(report_file.read_text())["results"]
    assert not row["error"] and (row["height"], row["width"]) == (32, 64) and row["runs_as"] == "litert fp32"
