"""``modnet export --format coreml|web``: options that do not belong, and missing extras, are one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modnet_matting.cli.main import main


@pytest.mark.parametrize(("argv", "message"), [
    (["--format", "onnx", "--size", "320x448", "-o", "m.onnx"], "--size is for --format coreml"),
    (["--format", "coreml", "--runtime", "ort.tgz", "-o", "m.mlpackage"], "--runtime is for --format web"),
    (["--format", "coreml", "-o", "m.onnx"], "NAME.mlpackage"),
    (["--format", "onnx", "--precision", "fp16", "-o", "m.onnx"], "--precision is for --format tflite"),
    (["--format", "tflite", "--precision", "int8", "-o", "m.tflite"], "tflite int8 needs --calibration DIR"),
    (["--format", "tflite", "--calibration", "photos", "-o", "m.tflite"], "--calibration is for --format openvino"),
    (["--format", "tflite", "--precision", "fp16", "--cache", "-o", "m.tflite"], "--cache is for --format openvino"),
])
def test_options_for_another_format_are_refused(argv: list[str], message: str, tmp_path: Path, monkeypatch,
                                                capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_web_export_over_a_file_is_refused(tmp_path: Path, capsys) -> None:
    target = tmp_path / "site"
    target.write_text("a file")
    assert main(["export", "--format", "web", "-o", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err and target.read_text() == "a file"


def test_a_missing_converter_names_its_extra(random_weights: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "coremltools", None)  # import coremltools now fails
    out = tmp_path / "m.mlpackage"
    assert main(["export", "--format", "coreml", "--weights", str(random_weights), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'modnet-matting[coreml]'" in err and err.count("\n") == 1
    assert not out.exists()
