"""`modnet eval` on generated folders: --pred, random weights, segmentation, peers, composites."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_portrait
from modnet_matting.cli.main import main
from modnet_matting.evaluate import peers as P
from modnet_matting.evaluate.composite import build_composites
from modnet_matting.evaluate.runner import find_dataset
from modnet_matting.io import read_image, save_image


def _alpha8(alpha: np.ndarray) -> np.ndarray:
    return (np.clip(alpha, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.fixture
def ppm(tmp_path: Path) -> Path:
    """PPM-100-style folder: four clean pairs, an image without matte, a broken image."""
    root = tmp_path / "ppm"
    for i in range(4):
        image, alpha = make_portrait(96, 80, seed=i)
        save_image(root / "image" / f"p{i}.jpg", image)
        save_image(root / "matte" / f"p{i}.png", _alpha8(alpha))
    save_image(root / "image" / "orphan.png", make_portrait(96, 80)[0])
    (root / "image" / "broken.jpg").write_bytes(b"not a jpeg")
    save_image(root / "matte" / "broken.png", _alpha8(make_portrait(96, 80)[1]))
    return root


@pytest.fixture
def seg(tmp_path: Path) -> Path:
    root = tmp_path / "seg"
    for i in range(2):
        image, alpha = make_portrait(80, 64, seed=10 + i)
        save_image(root / "images" / f"s{i}.jpg", image)
        save_image(root / "masks" / f"s{i}.png", _alpha8(alpha > 0.5))
    return root


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_dataset_pairs_by_stem_and_reports_the_rest(ppm: Path) -> None:
    dataset = find_dataset(ppm)
    assert dataset.kind == "matting"
    assert [s.stem for s in dataset.samples] == ["broken", "p0", "p1", "p2", "p3"]
    assert any("orphan.png" in p and "no reference" in p for p in dataset.problems)
    assert [s.stem for s in find_dataset(ppm, limit=2).samples] == ["broken", "p0"]


def test_pred_folder_scores_and_reports_missing_and_mismatched(ppm: Path, tmp_path: Path, capsys) -> None:
    pred = tmp_path / "pred"
    save_image(pred / "p0.png", read_image(ppm / "matte" / "p0.png")[..., 0])  # perfect
    save_image(pred / "p1.png", np.zeros((40, 40), np.uint8))  # wrong size
    noisy = np.clip(make_portrait(96, 80, seed=2)[1] * 0.5, 0, 1)
    save_image(pred / "p2.png", _alpha8(noisy))  # half the alpha everywhere inside
    out = tmp_path / "out"
    code = main(["eval", "--data", str(ppm), "--pred", str(pred), "--out", str(out), "--region", "both", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1  # some files were skipped
    assert "alpha in [0, 1]" in captured.out and "sum over the region / 1000" in captured.out
    assert "MAD[u]" in captured.out
    for text in ("orphan.png", "broken", "p1: prediction is 40x40", "no predicted matte"):
        assert text in captured.err
    rows = {row["stem"]: row for row in _csv(out / "pred_pred" / "per_image.csv")}
    assert set(rows) == {"p0", "p2"}
    assert float(rows["p0"]["mad"]) == 0.0 and float(rows["p0"]["conn"]) == 0.0
    truth = make_portrait(96, 80, seed=2)[1]
    expected_mad = np.abs(np.round(noisy * 255) / 255 - truth).mean()
    assert float(rows["p2"]["mad"]) == pytest.approx(expected_mad, abs=1e-6)
    assert float(rows["p0"]["mad_u"]) == 0.0 and float(rows["p2"]["mad_u"]) > 0.0
    summary = json.loads((out / "summary.json").read_text())
    method = summary["methods"]["pred:pred"]
    assert method["n"] == 2
    assert method["mean"]["mad"] == pytest.approx(expected_mad / 2, abs=1e-6)
    assert any("orphan.png" in p for p in summary["problems"])
    assert summary["conventions"]["region"].startswith("whole image")
    assert (out / "pred_pred" / "worst.png").is_file()


def test_random_weights_end_to_end(ppm: Path, tmp_path: Path, random_weights: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["eval", "--data", str(ppm), "--weights", str(random_weights), "--out", str(out),
                 "--limit", "3", "--quiet", "--save-pred", "--threads", "2"])
    captured = capsys.readouterr()
    assert code == 1  # the broken image is reported
    assert "broken" in captured.err and "Traceback" not in captured.err
    rows = _csv(out / "modnet" / "per_image.csv")
    assert [r["stem"] for r in rows] == ["p0", "p1"]
    assert set(rows[0]) == {"stem", "mse", "mad", "sad", "grad", "conn", "ff", "ms"}
    assert all(0 <= float(r["mad"]) <= 1 and float(r["ms"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"]["modnet"]["weights"] == str(random_weights)
    sheet = read_image(out / "modnet" / "worst.png")
    assert sheet.shape[1] >= 4 * 80  # image, reference, prediction, error side by side
    saved = read_image(out / "modnet" / "pred" / "p0.png")
    assert saved.shape[:2] == (96, 80)  # scored and saved at the original resolution


def test_segmentation_layout_gets_iou_and_boundary_f(seg: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["eval", "--data", str(seg), "--pred", str(seg / "masks"), "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0
    assert "IoU" in captured.out and "BF" in captured.out and "binarised at 0.5" in captured.out
    rows = _csv(out / "pred_masks" / "per_image.csv")
    assert [float(r["iou"]) for r in rows] == [1.0, 1.0]
    assert [float(r["boundary_f"]) for r in rows] == [1.0, 1.0]
    assert [float(r["mad"]) for r in rows] == [0.0, 0.0]


def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main(["eval", "--data", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--data", str(tmp_path / "empty")]) == 2
    assert main(["eval", "--data", str(tmp_path / "empty"), "--peers", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "data folder not found" in err and "image/ + matte/" in err
    assert "Traceback" not in err


def test_missing_weights_alone_is_an_error_but_peers_still_run(seg: Path, tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    monkeypatch.delenv(P.MODELS_ENV, raising=False)
    out = tmp_path / "out"
    assert main(["eval", "--data", str(seg), "--weights", str(tmp_path / "nope.safetensors"),
                 "--out", str(out), "--quiet"]) == 2
    code = main(["eval", "--data", str(seg), "--weights", str(tmp_path / "nope.safetensors"), "--out", str(out),
                 "--peers", "rvm,grabcut,closed_form", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    lines = [line for line in captured.err.splitlines() if line.startswith("modnet: not run")]
    assert len(lines) == 2 and any("rvm_mobilenetv3_fp32.onnx not found" in line for line in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"grabcut", "closed_form"}
    # closed-form is told the trimap: near-perfect on these synthetic portraits
    assert summary["methods"]["closed_form"]["mean"]["iou"] > 0.95


# --------------------------------------------------------------- peers


class _FakeRVM(torch.nn.Module):
    """Same inputs and outputs as RVM's ONNX graph; alpha = mean of the RGB input."""

    def forward(self, src, r1i, r2i, r3i, r4i, ratio):  # noqa: ANN001 - export signature
        pha = src.mean(dim=1, keepdim=True) * (ratio * 0 + 1)
        return src, pha, r1i, r2i, r3i, r4i


class _FakeU2Net(torch.nn.Module):
    def forward(self, x):  # noqa: ANN001
        d = torch.sigmoid(x[:, :1])
        return d, d, d, d, d, d, d


def _export(module: torch.nn.Module, args: tuple, path: Path, names: list[str], outputs: list[str]) -> None:
    dynamic = {name: {2: "h", 3: "w"} for name in names[:1]}
    torch.onnx.export(module, args, str(path), input_names=names, output_names=outputs, dynamic_axes=dynamic,
                      opset_version=17, dynamo=False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_peers_pre_and_post_processing(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    state = torch.zeros(1, 1, 1, 1)
    _export(_FakeRVM(), (torch.zeros(1, 3, 32, 32), state, state, state, state, torch.tensor([1.0])),
            tmp_path / "rvm_mobilenetv3_fp32.onnx", ["src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio"],
            ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"])
    _export(_FakeU2Net(), (torch.zeros(1, 3, 320, 320),), tmp_path / "u2netp.onnx", ["input.1"],
            [f"d{i}" for i in range(7)])
    rgb = np.zeros((50, 70, 3), np.uint8)
    rgb[:, 35:] = 255
    rvm = P.build_peer("rvm", [tmp_path])
    alpha = rvm.predict(rgb, "x")
    assert alpha.shape == (50, 70)
    assert alpha[:, :30].max() == 0.0 and alpha[:, 40:].min() == pytest.approx(1.0)  # RGB scaled to 0..1
    u2 = P.build_peer("u2netp", [tmp_path])
    alpha = u2.predict(rgb, "x")
    assert alpha.shape == (50, 70)
    # ImageNet-normalised red channel through a sigmoid, then min-max stretched to 0..1
    assert alpha[:, :30].max() == pytest.approx(0.0, abs=1e-6) and alpha[:, 40:].min() == pytest.approx(1.0)


def test_missing_peer_files_and_runtimes_are_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(P.MODELS_ENV, raising=False)
    for name in ("rvm", "u2netp"):
        with pytest.raises(P.PeerUnavailable, match="get_peers.sh"):
            P.build_peer(name, [tmp_path])
    with pytest.raises(ValueError, match="unknown peer"):
        P.parse_peers("rvm,foo")
    assert P.parse_peers("all") == list(P.PEERS)


def test_grabcut_finds_a_centred_subject() -> None:
    image, alpha = make_portrait(120, 100, seed=3)
    pred = P.build_peer("grabcut").predict(image, "x")
    from modnet_matting.evaluate.metrics import iou

    assert pred.shape == alpha.shape and iou(pred, alpha) > 0.6


# ---------------------------------------------------------- composites


def _cutouts(folder: Path) -> None:
    for i in range(2):
        image, alpha = make_portrait(60, 50, seed=20 + i)
        alpha = np.clip(alpha * 0.5 + 0.25 * (alpha > 0), 0, 1)  # soft values
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.dstack([image, _alpha8(alpha)]), "RGBA").save(folder / f"fg{i}.png")


def test_composites_are_deterministic_and_exact(tmp_path: Path) -> None:
    _cutouts(tmp_path / "fg")
    rng = np.random.default_rng(0)
    for i in range(3):
        save_image(tmp_path / "bg" / f"bg{i}.jpg", rng.integers(0, 256, (40 + 10 * i, 90, 3)).astype(np.uint8))
    first = build_composites(tmp_path / "fg", tmp_path / "bg", tmp_path / "c1", per_foreground=2, seed=7)
    build_composites(tmp_path / "fg", tmp_path / "bg", tmp_path / "c2", per_foreground=2, seed=7)
    assert len(first.entries) == 4 and not first.problems
    for entry in first.entries:
        for sub in ("image", "matte", "fg"):
            assert (tmp_path / "c1" / sub / f"{entry.name}.png").read_bytes() == \
                   (tmp_path / "c2" / sub / f"{entry.name}.png").read_bytes()
    entry = first.entries[0]
    comp = read_image(tmp_path / "c1" / "image" / f"{entry.name}.png").astype(np.float64)
    alpha = read_image(tmp_path / "c1" / "matte" / f"{entry.name}.png")[..., :1].astype(np.float64) / 255
    fg = read_image(tmp_path / "c1" / "fg" / f"{entry.name}.png").astype(np.float64)
    inside = alpha[..., 0] == 1.0
    assert np.array_equal(comp[inside], fg[inside])
    x, y, w, h = entry.crop
    assert (w, h) == (50, 60)
    manifest = json.loads((tmp_path / "c1" / "manifest.json").read_text())
    assert manifest["seed"] == 7 and len(manifest["composites"]) == 4
    # the set is a PPM-style benchmark: its own mattes score perfectly
    assert find_dataset(tmp_path / "c1").kind == "matting"


def test_composites_cli(tmp_path: Path, capsys) -> None:
    _cutouts(tmp_path / "fg")
    save_image(tmp_path / "bg" / "b.png", np.full((30, 30, 3), 90, np.uint8))
    assert main(["eval", "composites", "--fg", str(tmp_path / "fg"), "--bg", str(tmp_path / "bg"),
                 "--out", str(tmp_path / "set")]) == 0
    assert "wrote 2 composites" in capsys.readouterr().out
    code = main(["eval", "--data", str(tmp_path / "set"), "--pred", str(tmp_path / "set" / "matte"),
                 "--out", str(tmp_path / "scores"), "--quiet"])
    assert code == 0
    rows = _csv(tmp_path / "scores" / "pred_matte" / "per_image.csv")
    assert len(rows) == 2 and all(float(r["sad"]) == 0.0 for r in rows)
    # RGB foregrounds without --alpha are skipped with a reason (exit 1)
    save_image(tmp_path / "rgbfg" / "x.png", np.zeros((10, 10, 3), np.uint8))
    assert main(["eval", "composites", "--fg", str(tmp_path / "rgbfg"), "--bg", str(tmp_path / "bg"),
                 "--out", str(tmp_path / "set2")]) == 1
    assert "no alpha channel" in capsys.readouterr().err
    assert main(["eval", "composites", "--fg", str(tmp_path / "fg"), "--bg", str(tmp_path / "bg"),
                 "--out", str(tmp_path / "fg")]) == 2


def test_exported_models_are_scored_on_their_own_runtime(seg: Path, tmp_path: Path, random_weights: Path) -> None:
    """`eval --weights m.onnx` said "an .onnx model runs on the onnx or openvino backend, not torch"."""
    from modnet_matting.inference import load_model

    onnx_file = tmp_path / "m.onnx"
    assert main(["export", "--format", "onnx", "--weights", str(random_weights), "-o", str(onnx_file),
                 "--no-check"]) == 0
    out = tmp_path / "out"
    assert main(["eval", "--data", str(seg), "--weights", str(onnx_file), "--out", str(out), "--quiet"]) == 0
    scored = {r["stem"]: float(r["mad"]) for r in _csv(out / "modnet" / "per_image.csv")}
    reference = tmp_path / "ref"
    assert main(["eval", "--data", str(seg), "--weights", str(random_weights), "--out", str(reference),
                 "--quiet"]) == 0
    expected = {r["stem"]: float(r["mad"]) for r in _csv(reference / "modnet" / "per_image.csv")}
    assert scored.keys() == expected.keys()
    assert all(abs(scored[k] - expected[k]) < 1e-3 for k in scored)  # fp32 export: the same figures
    assert load_model(onnx_file, precision="fp32").backend.precision == "fp32"
