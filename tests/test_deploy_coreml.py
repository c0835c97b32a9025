"""``modnet export --format coreml``: the .mlpackage's spec (Core ML predicts only on macOS).

Checked: the image input (RGB, the chosen size) with the weights' normalisation as the
program's first operations, the alpha output's shape, float16 weights, the weights config
in the metadata, and that the package is replaced only whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modnet_matting.cli.main import main
from modnet_matting.model import MODNet

ct = pytest.importorskip("coremltools", reason="coremltools is not installed (pip install 'modnet-matting[coreml]')")


def _program_ops(spec) -> list:  # noqa: ANN001 - a Core ML protobuf
    main_function = spec.mlProgram.functions["main"]
    return list(main_function.block_specializations[main_function.opset].operations)


def _const(op) -> np.ndarray:  # noqa: ANN001 - a MIL operation
    value = op.attributes["val"].immediateValue.tensor
    for field in ("floats", "halfs" if hasattr(value, "halfs") else "floats", "ints"):
        data = getattr(value, field, None)
        if data is not None and len(data.values):
            return np.asarray(data.values)
    return np.asarray([])


@pytest.fixture(scope="module")
def package(random_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("coreml") / "modnet.mlpackage"
    assert main(["export", "--format", "coreml", "--weights", str(random_weights), "--size", "256x384",
                 "-o", str(out)]) == 0
    return out


def test_the_input_is_an_rgb_image_of_the_chosen_size(package: Path) -> None:
    spec = ct.utils.load_spec(str(package))
    (image,) = spec.description.input
    assert image.name == "image" and image.type.WhichOneof("Type") == "imageType"
    assert image.type.imageType.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    assert (image.type.imageType.width, image.type.imageType.height) == (256, 384)
    (alpha,) = spec.description.output
    assert alpha.name == "alpha" and list(alpha.type.multiArrayType.shape) == [1, 1, 384, 256]


def test_the_normalisation_is_built_in(package: Path) -> None:
    """Pixels 0..255 become x / 127.5 - 1 (mean and std 0.5) before the first convolution."""
    ops = _program_ops(ct.utils.load_spec(str(package)))
    kinds = [op.type for op in ops if op.type != "const"][:2]
    assert kinds == ["mul", "add"]
    scales = {round(float(v), 6) for op in ops[:6] if op.type == "const" for v in _const(op)}
    assert round(1 / 127.5, 6) in scales and -1.0 in scales


def test_weights_are_float16_and_the_config_travels(package: Path) -> None:
    spec = ct.utils.load_spec(str(package))
    ops = _program_ops(spec)
    assert any(op.type == "cast" for op in ops)  # fp32 input cast to the fp16 program
    weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    parameters = sum(p.numel() for p in MODNet().parameters())
    assert 1.8 * parameters < weights.stat().st_size < 2.6 * parameters  # 2 bytes each; fp32 would be 4
    config = json.loads(spec.description.metadata.userDefined["modnet_config"])
    assert config["preprocess"]["size_divisor"] == 32


def test_bad_sizes_and_names_are_one_line_errors(random_weights: Path, tmp_path: Path, capsys) -> None:
    for extra, message in ((["--size", "250x384"], "multiple of 32"), (["--size", "big"], "WIDTHxHEIGHT"),
                           (["-o", str(tmp_path / "m.onnx")], "NAME.mlpackage")):
        argv = ["export", "--format", "coreml", "--weights", str(random_weights), *extra]
        if "-o" not in extra:
            argv += ["-o", str(tmp_path / "m.mlpackage")]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "m.mlpackage").exists()
