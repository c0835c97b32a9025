"""ONNX and TorchScript exports agree with eager PyTorch at several sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from modnet_matting.cli.main import main
from modnet_matting.export import export_onnx, export_torchscript, read_onnx_config
from modnet_matting.model import MODNet
from modnet_matting.weights import Preprocess, WeightsConfig

SIZES = [(1, 64, 96), (2, 128, 160)]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def net() -> MODNet:
    torch.manual_seed(1)
    return MODNet().eval()


def eager(net: MODNet, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net.forward_matte(torch.from_numpy(batch)).numpy()


def random_batch(batch: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(height).uniform(-1, 1, (batch, 3, height, width)).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_file(net: MODNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = WeightsConfig(preprocess=Preprocess(reference_size=384))
    return export_onnx(net, tmp_path_factory.mktemp("onnx") / "modnet.onnx", config=config)


def test_onnx_graph_has_the_authors_interface(onnx_file: Path) -> None:
    model = onnx.load(str(onnx_file))
    onnx.checker.check_model(model)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert graph_input.name == "input" and graph_output.name == "output"
    for value in (graph_input, graph_output):
        dims = value.type.tensor_type.shape.dim
        assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # dynamic B, H, W
    assert read_onnx_config(onnx_file).preprocess.reference_size == 384


@pytest.mark.parametrize("shape", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_onnx_parity(net: MODNet, onnx_file: Path, shape: tuple[int, int, int]) -> None:
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    batch = random_batch(*shape)
    out = session.run(["output"], {"input": batch})[0]
    assert out.shape == (shape[0], 1, shape[1], shape[2])
    assert np.abs(out - eager(net, batch)).max() <= TOLERANCE


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_parity_at_other_sizes(net: MODNet, tmp_path: Path) -> None:
    path = export_torchscript(net, tmp_path / "modnet.pt")
    traced = torch.jit.load(str(path))
    for shape in SIZES:
        batch = random_batch(*shape)
        with torch.no_grad():
            out = traced(torch.from_numpy(batch)).numpy()
        assert out.shape == (shape[0], 1, shape[1], shape[2])
        assert np.abs(out - eager(net, batch)).max() <= TOLERANCE


def test_cli_export_checks_parity(random_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m.pt"
    assert main(["export", "--format", "torchscript", "--weights", str(random_weights), "-o", str(out)]) == 0
    assert out.is_file() and "max |export - pytorch|" in capsys.readouterr().err


def test_cli_export_refuses_bad_requests(random_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--weights", str(random_weights), "-o", str(out), "--opset", "13"]) == 2
    assert "at least 17" in capsys.readouterr().err
    assert main(["export", "--format", "onnx", "--weights", str(random_weights), "-o", str(random_weights)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert not out.exists()


def test_export_replaces_only_its_own_files(tmp_path, capsys) -> None:
    """`-o user.onnx` silently replaced a file modnet did not write; its own export is replaced as before."""
    from modnet_matting.cli.main import main
    from modnet_matting.model import MODNet
    from modnet_matting.weights import WeightsConfig, save_weights

    weights = save_weights(MODNet(), tmp_path / "w.safetensors", WeightsConfig())
    users = tmp_path / "user.onnx"
    users.write_bytes(b"someone else's graph")
    args = ["export", "--format", "onnx", "--weights", str(weights), "-o", str(users), "--no-check"]
    assert main(args) == 2
    assert "refusing to overwrite" in capsys.readouterr().err and users.read_bytes() == b"someone else's graph"
    assert main([*args, "--overwrite"]) == 0
    assert main(args) == 0  # its own export now: replaced without asking
    script = tmp_path / "m.pt"
    assert main(["export", "--format", "torchscript", "--weights", str(weights), "-o", str(script), "--no-check"]) == 0
    assert main(["export", "--format", "torchscript", "--weights", str(weights), "-o", str(script), "--no-check"]) == 0
