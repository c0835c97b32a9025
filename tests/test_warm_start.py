"""The warm start: a process that finds ``auto``'s earlier choice runs the same graph without PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_portrait
from modnet_matting.inference import openvino_available, warm

pytestmark = pytest.mark.skipif(not openvino_available(), reason="the warm start serves OpenVINO choices")

_PROBE = """
import json, sys
import cv2, numpy as np
from modnet_matting import load_model
predictor = load_model(sys.argv[1], device="cpu")
alpha = predictor.predict(cv2.imread(sys.argv[2])[..., ::-1].copy())
np.save(sys.argv[3], alpha)
print(json.dumps({"torch": "torch" in sys.modules, "backend": predictor.backend.name,
                  "precision": predictor.backend.precision}))
"""


def _run(weights: Path, photo: Path, out: Path, home: Path) -> dict:
    env = {**os.environ, "MODNET_HOME": str(home)}
    result = subprocess.run([sys.executable, "-c", _PROBE, str(weights), str(photo), str(out)], env=env,
                            capture_output=True, text=True, timeout=300, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_second_process_mattes_without_torch_and_gives_the_same_matte(random_weights: Path,
                                                                         tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), make_portrait(96, 64)[0])
    first = _run(random_weights, photo, tmp_path / "first.npy", tmp_path / "home")
    second = _run(random_weights, photo, tmp_path / "second.npy", tmp_path / "home")
    assert first["torch"] and first["backend"] == "openvino"
    assert not second["torch"], "the remembered choice still imported PyTorch"
    assert second["backend"] == first["backend"] and second["precision"] == first["precision"]
    # the same graph and precision; bf16 sums may run in another order when the cores are busy
    assert np.abs(np.load(tmp_path / "first.npy") - np.load(tmp_path / "second.npy")).max() < 2e-3
    assert list((tmp_path / "home" / "openvino" / "compiled").glob("*.blob")), "no compiled model cached"


def test_replaced_weights_take_the_full_path(random_weights: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(random_weights.read_bytes())
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), make_portrait(64, 64)[0])
    _run(weights, photo, tmp_path / "a.npy", tmp_path / "home")
    os.utime(weights, ns=(1, 1))  # the same name, another file as far as anyone can tell
    assert _run(weights, photo, tmp_path / "b.npy", tmp_path / "home")["torch"]


def test_no_choice_is_remembered_or_recalled_where_torch_must_pick_the_device(
        random_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODNET_HOME", str(tmp_path))
    store = warm.choices_file()
    store.parent.mkdir(parents=True)
    key = warm._key(random_weights, "auto", "auto", "auto")
    assert key is not None
    store.write_text(json.dumps({key: {"graph": str(random_weights), "precision": "fp32", "config": "{}"}}))
    monkeypatch.setattr(warm, "gpu_possible", lambda: True)
    assert warm._key(random_weights, "auto", "auto", "auto") is None
    assert warm.recall(random_weights, "auto", "auto", "auto", None) is None
    assert warm._key(random_weights, "auto", "auto", "cpu") is not None  # the CPU, named, needs no probe
    assert warm._key(random_weights, "torch", "auto", "cpu") is None
    assert warm._key(random_weights, "auto", "auto", "cuda") is None


def test_a_damaged_record_falls_back_to_the_full_path(random_weights: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODNET_HOME", str(tmp_path))
    warm.choices_file().parent.mkdir(parents=True)
    key = warm._key(random_weights, "auto", "auto", "cpu")
    for record in ("not json", json.dumps({key: {"graph": str(tmp_path / "gone.onnx")}}),
                   json.dumps({key: {"graph": str(random_weights), "precision": "fp32"}})):
        warm.choices_file().write_text(record)
        assert warm.recall(random_weights, "auto", "auto", "cpu", None) is None


def test_the_shipped_int8_model_belongs_to_the_shipped_weights_and_is_within_the_bound() -> None:
    """Retrained weights with the old int8 model beside them would be a silent mismatch: the model records the
    SHA-256 of the file it was calibrated on, and this fails until it is calibrated again (docs/performance.md)."""
    from modnet_matting.inference.backends.openvino import ACCURACY_BOUND, IR_WEIGHTS_PATH, read_ir, read_ir_accuracy
    from modnet_matting.weights import packaged_int8, resolve, sha256_of

    ir = packaged_int8("modnet-people")
    assert ir is not None, "modnet-people ships no int8 model"
    model = read_ir(ir)
    assert model.get_rt_info(IR_WEIGHTS_PATH).astype(str) == sha256_of(resolve("modnet-people")[0])
    accuracy = read_ir_accuracy(model)
    assert accuracy is not None and accuracy.images >= 40 and accuracy.mad <= ACCURACY_BOUND


def test_a_first_run_on_the_bundled_weights_takes_the_shipped_int8_model_without_torch(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), make_portrait(96, 64)[0])
    first = _run("modnet-people", photo, tmp_path / "a.npy", tmp_path / "home")  # an empty cache
    assert first == {"torch": False, "backend": "openvino", "precision": "int8"}
    alpha = np.load(tmp_path / "a.npy")
    assert alpha.shape == (96, 64) and 0 <= alpha.min() and alpha.max() <= 1


def test_a_shipped_int8_model_is_not_used_for_other_weights(random_weights: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from modnet_matting.weights import packaged_int8

    monkeypatch.setenv("MODNET_HOME", str(tmp_path))
    shipped = packaged_int8("modnet-people")
    monkeypatch.setattr(warm, "packaged_int8", lambda name: shipped)  # as if random_weights shipped with it
    assert warm.shipped_int8(random_weights, "auto", None) is None
    assert warm.shipped_int8("modnet-people", "auto", None) is not None
    assert warm.shipped_int8("modnet-people", "bf16", None) is None  # asked for another precision
