"""``modnet matte`` and ``modnet weights`` end to end on generated images."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_portrait
from modnet_matting import weights
from modnet_matting.cli.main import main
from modnet_matting.io import encode_png
from modnet_matting.model import MODNet
from modnet_matting.weights import Preprocess, WeightsConfig, save_weights


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights whose config asks for a 64 px reference size: every forward pass is cheap."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "small.safetensors"
    config = WeightsConfig(preprocess=Preprocess(reference_size=64))
    return save_weights(MODNet().eval(), path, config, dtype=torch.float32)


def write(path: Path, seed: int = 0, size: tuple[int, int] = (96, 80)) -> np.ndarray:
    rgb = make_portrait(*size, seed=seed)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    return rgb


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    write(root / "a.jpg", 0)
    write(root / "b.png", 1, (64, 100))
    write(root / "sub" / "c.png", 2)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "notes.txt").write_text("not an image, not a failure")
    return root


def test_folder_with_a_corrupt_file(folder: Path, small_weights: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["matte", str(folder), "-o", str(out), "--weights", str(small_weights),
                 "--output", "alpha,cutout,composite,preview", "--background", "red"])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "matted 2 of 3" in err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a.alpha.png", "a.composite.jpg", "a.cutout.png", "a.preview.jpg",
                     "b.alpha.png", "b.composite.png", "b.cutout.png", "b.preview.jpg"]
    alpha = read(out / "b.alpha.png")
    assert alpha.shape == (64, 100) and alpha.dtype == np.uint8
    cut = read(out / "b.cutout.png")
    assert cut.shape == (64, 100, 4) and np.array_equal(cut[..., 3], alpha)
    assert read(out / "a.composite.jpg").shape == (96, 80, 3)
    assert read(out / "a.preview.jpg").shape == (96, 240, 3)


def test_recursive_keeps_subfolders_and_16_bit(folder: Path, small_weights: Path, tmp_path: Path) -> None:
    (folder / "broken.jpg").unlink()
    out = tmp_path / "out"
    assert main(["matte", str(folder), "-r", "-o", str(out), "--weights", str(small_weights), "--bits", "16"]) == 0
    alpha = read(out / "sub" / "c.alpha.png")
    assert alpha.shape == (96, 80) and alpha.dtype == np.uint16
    assert {p.relative_to(out).as_posix() for p in out.rglob("*")} == {
        "a.alpha.png", "b.alpha.png", "sub", "sub/c.alpha.png"
    }  # written atomically: no temporary files left
    reference = tmp_path / "plain"
    reference.write_bytes(b"")
    assert (out / "a.alpha.png").stat().st_mode & 0o777 == reference.stat().st_mode & 0o777  # not private


def test_default_is_next_to_the_input_and_reruns_skip_outputs(folder: Path, small_weights: Path, capsys) -> None:
    (folder / "broken.jpg").unlink()
    for _ in range(2):
        assert main(["matte", str(folder), "--weights", str(small_weights)]) == 0
        assert "matted 2 of 2" in capsys.readouterr().err  # the first run's a.alpha.png is not an input
    assert (folder / "a.alpha.png").is_file() and (folder / "b.alpha.png").is_file()


def test_globs_and_clashing_stems(tmp_path: Path, small_weights: Path) -> None:
    write(tmp_path / "x.jpg", 0)
    write(tmp_path / "x.png", 1)
    out = tmp_path / "out"
    assert main(["matte", str(tmp_path / "x.*"), "-o", str(out), "--weights", str(small_weights)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x.jpg.alpha.png", "x.png.alpha.png"]


def test_never_overwrites_an_input(tmp_path: Path, small_weights: Path, capsys) -> None:
    write(tmp_path / "photo.png", 0)
    victim = tmp_path / "photo.alpha.png"
    write(victim, 1)
    before = victim.read_bytes()
    code = main(["matte", str(tmp_path / "photo.png"), str(victim), "--weights", str(small_weights)])
    assert code == 1
    assert "refusing to overwrite" in capsys.readouterr().err
    assert victim.read_bytes() == before
    assert (tmp_path / "photo.alpha.alpha.png").is_file()  # the other input was still matted


def test_same_names_from_several_folders_keep_their_layout(tmp_path: Path, small_weights: Path, capsys) -> None:
    """a/x/p.jpg and a/y/p.jpg once both wrote out/p.jpg.alpha.png: y's result silently replaced x's."""
    write(tmp_path / "a" / "x" / "p.jpg", 0)
    write(tmp_path / "a" / "y" / "p.jpg", 1)
    out = tmp_path / "out"
    for argv in ([str(tmp_path / "a" / "x" / "p.jpg"), str(tmp_path / "a" / "y" / "p.jpg")],
                 [str(tmp_path / "a" / "**" / "*.jpg")]):
        assert main(["matte", *argv, "-o", str(out), "--weights", str(small_weights)]) == 0
        assert "matted 2 of 2" in capsys.readouterr().err
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["x/p.alpha.png", "y/p.alpha.png"]
    alone = tmp_path / "alone"
    for name in ("x", "y"):  # each output holds its own input's matte
        assert main(["matte", str(tmp_path / "a" / name / "p.jpg"), "-o", str(alone / name),
                     "--weights", str(small_weights)]) == 0
        assert np.array_equal(read(out / name / "p.alpha.png"), read(alone / name / "p.alpha.png"))


def test_two_folders_with_the_same_file_names(tmp_path: Path, small_weights: Path) -> None:
    write(tmp_path / "day" / "p.jpg", 0)
    write(tmp_path / "night" / "p.jpg", 1)
    out = tmp_path / "out"
    assert main(["matte", str(tmp_path / "day"), str(tmp_path / "night"), "-o", str(out),
                 "--weights", str(small_weights)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["day/p.alpha.png", "night/p.alpha.png"]


def test_folder_mode_never_overwrites_a_users_file(tmp_path: Path, small_weights: Path, capsys) -> None:
    """A real photo named y.cutout.png next to y.jpg was overwritten by y's cut-out (exit 0)."""
    write(tmp_path / "y.jpg", 0)
    photo = tmp_path / "y.cutout.png"
    write(photo, 1)
    before = photo.read_bytes()
    assert main(["matte", str(tmp_path), "--output", "alpha,cutout", "--weights", str(small_weights)]) == 1
    err = capsys.readouterr().err
    assert f"refusing to overwrite the input {photo}" in err  # it is not one of ours, so it is an input here
    assert photo.read_bytes() == before
    assert (tmp_path / "y.cutout.alpha.png").is_file()
    assert main(["matte", str(tmp_path / "y.jpg"), "--output", "alpha,cutout", "--weights", str(small_weights)]) == 1
    assert "modnet did not write it (--overwrite replaces it)" in capsys.readouterr().err
    assert photo.read_bytes() == before
    assert main(["matte", str(tmp_path / "y.jpg"), "--output", "alpha,cutout", "--weights", str(small_weights),
                 "--overwrite"]) == 0
    assert read(photo).shape == (96, 80, 4)  # replaced only when asked


def test_reruns_replace_their_own_outputs_and_list_them(tmp_path: Path, small_weights: Path, capsys) -> None:
    write(tmp_path / "y.jpg", 0)
    for _ in range(2):
        assert main(["matte", str(tmp_path), "--output", "alpha,preview", "--weights", str(small_weights)]) == 0
    err = capsys.readouterr().err
    assert f"skipped {tmp_path / 'y.alpha.png'}: output of an earlier run" in err
    assert f"skipped {tmp_path / 'y.preview.jpg'}: output of an earlier run" in err


def test_gifs_and_output_like_names_are_matted_in_folders_and_globs(tmp_path: Path, small_weights: Path,
                                                                   capsys) -> None:
    """GIFs were ignored in folders and globs and x.alpha.jpg was passed over without a word."""
    rgb = make_portrait(64, 48, seed=3)[0]
    Image.fromarray(rgb).save(tmp_path / "anim.gif")
    write(tmp_path / "x.alpha.jpg", 4)
    (tmp_path / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["matte", str(tmp_path / "*.gif"), "-o", str(out), "--weights", str(small_weights)]) == 0
    assert main(["matte", str(tmp_path), "-o", str(out), "--weights", str(small_weights)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["anim.alpha.png", "x.alpha.alpha.png"]
    assert "ignored 1 file(s) whose suffix is not an image's" in capsys.readouterr().err


def test_an_extreme_strip_runs_under_the_network_pixel_cap(tmp_path: Path, small_weights: Path, monkeypatch) -> None:
    """An 8 x 300,000 strip once ran the network at 32 x 125,000+: the cap did not hold for thin images.

    Sides over 30,000 px are refused now (io.MAX_IMAGE_SIDE); the longest allowed strip must hold the cap too.
    """
    from modnet_matting import inference

    shapes: list[tuple[int, ...]] = []
    run = inference.TorchBackend.run
    monkeypatch.setattr(inference.TorchBackend, "run",
                        lambda self, batch: shapes.append(batch.shape) or run(self, batch))
    strip = tmp_path / "strip.png"
    strip.write_bytes(encode_png(np.full((8, 30_000, 3), 128, np.uint8)))
    out = tmp_path / "out"
    assert main(["matte", str(strip), "-o", str(out), "--weights", str(small_weights), "--backend", "torch"]) == 0
    assert read(out / "strip.alpha.png").shape == (8, 30_000)
    assert shapes and all(h * w <= inference.DEFAULT_MAX_PIXELS for *_, h, w in shapes)


def test_stdin_to_stdout_in_a_real_process(small_weights: Path) -> None:
    rgb = make_portrait(72, 56)[0]
    result = subprocess.run(
        [sys.executable, "-m", "modnet_matting.cli.main", "matte", "-", "--weights", str(small_weights),
         "--output", "cutout,alpha"],
        input=encode_png(rgb), capture_output=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    cut = cv2.imdecode(np.frombuffer(result.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
    assert cut.shape == (72, 56, 4)  # only the first requested output, as PNG


def test_corrupt_stdin_is_reported(small_weights: Path, monkeypatch, capsysbinary) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"garbage")))
    assert main(["matte", "-", "--weights", str(small_weights)]) == 1
    captured = capsysbinary.readouterr()
    assert captured.out == b"" and b"cannot read image stdin" in captured.err


def test_missing_default_weights_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(weights, "_packaged_path", lambda name: tmp_path / name)
    write(tmp_path / "p.jpg")
    assert main(["matte", str(tmp_path / "p.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "modnet weights fetch" in err and "--weights" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--output", "alpha,mask"], "--output takes"),
        (["--background", "notacolour", "--output", "composite"], "not 'blur'"),
        (["--precision", "fp16", "--device", "cpu"], "fp16 is for GPUs"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, small_weights: Path, capsys, extra, message) -> None:
    write(tmp_path / "p.jpg")
    assert main(["matte", str(tmp_path / "p.jpg"), "--weights", str(small_weights), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_nothing_to_matte(tmp_path: Path, small_weights: Path, capsys) -> None:
    assert main(["matte", str(tmp_path / "missing.jpg"), "--weights", str(small_weights)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_weights_list(capsys) -> None:
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in weights.REGISTRY:
        assert name in out


def test_weights_fetch_verifies_the_checksum(tmp_path: Path, small_weights: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MODNET_HOME", str(tmp_path / "home"))
    entry = weights.REGISTRY["modnet-photographic"]
    monkeypatch.setitem(weights.REGISTRY, "modnet-photographic",
                        weights.WeightsEntry(**{**entry.__dict__, "url": small_weights.as_uri()}))
    assert main(["weights", "fetch", "modnet-photographic"]) == 2  # no checksum known: refuse
    assert "--sha256" in capsys.readouterr().err
    for malformed in ("abc", "g" * 64, "0" * 63):  # refused before any download (was: downloaded, then mismatch)
        assert main(["weights", "fetch", "modnet-photographic", "--sha256", malformed]) == 2
        assert "64 hexadecimal digits" in capsys.readouterr().err
        assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.ckpt"))
    assert main(["weights", "fetch", "modnet-photographic", "--sha256", "0" * 64]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    digest = hashlib.sha256(small_weights.read_bytes()).hexdigest()
    assert main(["weights", "fetch", "modnet-photographic", "--sha256", digest]) == 0
    fetched = Path(capsys.readouterr().out.strip())
    assert fetched.read_bytes() == small_weights.read_bytes()


@pytest.mark.parametrize("argv", [["matte", "p.jpg"], ["video", "clip.mp4"], ["webcam"], ["serve"]])
def test_every_model_command_defaults_to_the_auto_path(argv: list[str]) -> None:
    """matte, video, webcam and serve share one set of model options with the same defaults."""
    from modnet_matting import inference
    from modnet_matting.cli import options
    from modnet_matting.cli.main import build_parser

    args = build_parser().parse_args(argv)
    assert (args.backend, args.precision, args.device, args.weights) == ("auto", "auto", "auto", None)
    assert options.PRECISIONS == inference.PRECISIONS and options.BACKENDS == inference.BACKENDS


def test_compile_says_it_compiles_and_where_it_caches(tmp_path: Path, monkeypatch, capsys) -> None:
    """--backend compile took 223 s for one photo with no word said."""
    import argparse

    from modnet_matting import inference
    from modnet_matting.cli.options import load_predictor

    monkeypatch.setenv("MODNET_HOME", str(tmp_path))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(inference, "load_model", lambda *args, **kwargs: "predictor")
    args = argparse.Namespace(weights=None, device="cpu", precision="fp32", backend="compile", refine=True)
    assert load_predictor(args) == "predictor"
    err = capsys.readouterr().err
    assert "torch.compile builds the network" in err and str(tmp_path / "torchinductor") in err
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "torchinductor")


def test_a_photo_over_the_size_limit_is_one_line_and_the_batch_goes_on(folder: Path, small_weights: Path,
                                                                        tmp_path: Path, capsys) -> None:
    """A 192-megapixel (or 8 x 3,000,000 px) file is refused from its header; the other photos are matted."""
    from conftest import png_header_only

    (folder / "broken.jpg").unlink()
    (folder / "huge.png").write_bytes(png_header_only(16000, 12000))
    (folder / "strip.png").write_bytes(png_header_only(8, 3_000_000))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code = main(["matte", str(folder), "-o", str(out), "--weights", str(small_weights)])
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "matted 2 of 4" in err
    assert "huge.png" in err and "megapixels" in err and "strip.png" in err and "30,000" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.alpha.png", "b.alpha.png"]


def test_one_line_says_what_runs_and_quiet_hides_it(folder: Path, small_weights: Path, tmp_path: Path,
                                                    capsys) -> None:
    (folder / "broken.jpg").unlink()
    assert main(["matte", str(folder / "a.jpg"), "-o", str(tmp_path / "o1"), "--weights", str(small_weights),
                 "--backend", "torch", "--precision", "fp32"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("modnet: ")]
    assert lines[0] == (f"modnet: {small_weights.name} on cpu, torch fp32, network input at reference size 64 "
                        "(-q hides this line)")
    assert main(["matte", str(folder / "a.jpg"), "-o", str(tmp_path / "o2"), "--weights", str(small_weights),
                 "-q"]) == 0
    assert "on cpu" not in capsys.readouterr().err


def test_hidden_images_and_broken_links_are_listed_not_silently_passed_over(folder: Path, small_weights: Path,
                                                                             tmp_path: Path, capsys) -> None:
    (folder / "broken.jpg").unlink()
    (folder / ".secret.jpg").write_bytes((folder / "a.jpg").read_bytes())
    (folder / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert main(["matte", str(folder), "-o", str(tmp_path / "out"), "--weights", str(small_weights), "-q"]) == 0
    err = capsys.readouterr().err
    assert ".secret.jpg: hidden file" in err and "gone.jpg: broken symbolic link" in err


def test_an_unwritable_output_folder_fails_before_the_network_runs(folder: Path, small_weights: Path,
                                                                   tmp_path: Path, monkeypatch, capsys) -> None:
    """It was found only after every image had been through the network (as root a test cannot chmod it)."""
    from modnet_matting.cli import matte as matte_cli

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    monkeypatch.setattr(matte_cli, "load_predictor", lambda args: pytest.fail("the model was loaded"))
    assert main(["matte", str(folder), "-o", str(locked / "new"), "--weights", str(small_weights)]) == 2
    assert f"cannot write into {locked / 'new'}" in capsys.readouterr().err


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`modnet weights list | head -1` printed BrokenPipeError's traceback."""
    command = f"'{sys.executable}' -m modnet_matting.cli.main weights list | head -1"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False)
    assert result.stdout.startswith("NAME") and "Traceback" not in result.stderr
