"""SOC adaptation: the consistency losses, the empty-band guard, the adapter and ``modnet adapt``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from modnet_matting.cli.main import main
from modnet_matting.io import save_image
from modnet_matting.model import MODNet
from modnet_matting.train.losses import semantic_target
from modnet_matting.train.soc import FrameSet, SOCAdapter, SOCConfig, soc_losses, transition_band
from modnet_matting.train.synthetic import synthetic_portrait
from modnet_matting.weights import Preprocess, load_weights, save_weights, with_card

PRE = Preprocess(reference_size=64)


def heads(matte: torch.Tensor, semantic: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    matte = matte.clone().requires_grad_(True)
    semantic = (semantic if semantic is not None else semantic_target(matte.detach())).clone().requires_grad_(True)
    detail = torch.full_like(matte, 0.3).requires_grad_(True)
    return semantic, detail, matte


def test_transition_band_is_the_dilation_minus_the_erosion() -> None:
    fg = torch.zeros(1, 1, 64, 64)
    fg[..., 16:48, 16:48] = 1
    band = transition_band(fg)[0, 0]
    side = int((64 + 64) / 2 * 0.05)  # 3
    assert band[32, 16 - side // 2 - 1] == 0 and band[32, 16] == 1 and band[32, 32] == 0
    assert 0 < band.sum() < 4 * 32 * (side + 1)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_empty_band_gives_zero_detail_loss_not_nan(value: float) -> None:
    semantic, detail, matte = heads(torch.full((1, 1, 64, 64), value))
    losses = soc_losses(semantic, detail, matte, torch.zeros_like(detail), torch.zeros_like(matte))
    assert losses["band"] == 0 and losses["detail"] == 0
    losses["total"].backward()
    for tensor in (semantic, detail, matte):
        assert tensor.grad is None or torch.isfinite(tensor.grad).all()


def test_losses_by_hand() -> None:
    matte = torch.zeros(1, 1, 64, 64)
    matte[..., 16:48, 16:48] = 1
    semantic, detail, matte = heads(matte, semantic=torch.full((1, 1, 4, 4), 0.5))
    frozen_detail, frozen_matte = detail.detach() + 0.2, matte.detach()
    losses = soc_losses(semantic, detail, matte, frozen_detail, frozen_matte)
    blurred = semantic_target(matte.detach())
    pseudo = blurred * (blurred > 0.01)
    expected = 100 * (((0.5 - pseudo) ** 2).mean() + ((blurred - 0.5) ** 2).mean())
    assert losses["semantic"].item() == pytest.approx(expected.item(), rel=1e-5)
    # |d - d'| = 0.2 everywhere in the band and the matte equals its frozen copy.
    assert losses["detail"].item() == pytest.approx(0.2, rel=1e-5)
    assert 0 < losses["band"].item() < 0.5


def frames(count: int = 2) -> FrameSet:
    rng = np.random.default_rng(0)
    images = [synthetic_portrait(64, 64, rng)[0] for _ in range(count)]
    return FrameSet("generated", frames=images + [np.full((64, 64, 3), 128, np.uint8)])  # the last: nobody there


def test_soc_lowers_its_loss_keeps_norms_frozen_and_never_nans(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MODNet()
    bn_before = {k: v.clone() for k, v in model.state_dict().items() if "bnorm" in k or ".1.running" in k}
    adapter = SOCAdapter(model, frames(1), PRE, SOCConfig(epochs=2), tmp_path / "soc.pt", log=lambda _: None)
    before = adapter.evaluate()
    assert adapter.run()
    after = adapter.evaluate()
    assert after < 0.8 * before, (before, after)
    assert len(adapter.history) == 4
    assert all(math.isfinite(v) for stats in adapter.history for v in stats.values())
    state = adapter.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in bn_before.items())
    assert (tmp_path / "soc.pt").exists()


def test_adapt_command_resumes_and_writes_weights(tmp_path: Path, random_weights: Path, capsys) -> None:
    folder = tmp_path / "frames"
    for i, image in enumerate(frames(1).frames):
        save_image(folder / f"{i}.png", image)
    (folder / "broken.jpg").write_bytes(b"no")
    source = tmp_path / "measured.safetensors"  # a card with figures measured on the source weights
    original, config = load_weights(random_weights)
    save_weights(original, source, with_card(config, accuracy={"mad": 0.001}, validation={"iou": 0.9}),
                 dtype=torch.float32)
    out = tmp_path / "adapted.safetensors"
    args = ["adapt", "--weights", str(source), "--data", str(folder), "-o", str(out), "--epochs", "1",
            "--size", "64", "--device", "cpu"]
    assert main([*args, "--max-minutes", "0"]) == 0  # stops after the first image, state saved
    text = capsys.readouterr().out
    assert "broken.jpg" in text and "Run the same command to continue" in text
    saved = torch.load(tmp_path / "adapted.safetensors.soc.pt", weights_only=True)
    assert (saved["epoch"], saved["position"]) == (0, 1)
    assert main(args) == 0
    assert "resumed" in capsys.readouterr().out
    model, config = load_weights(out)
    assert config.card["soc"]["epochs_done"] == 1 and config.card["soc"]["frames"] == 2
    assert config.card["source"] == "random test weights"  # what the weights are is kept ...
    assert "accuracy" not in config.card and "validation" not in config.card  # ... what was measured is not
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, original.state_dict()[k])]
    assert changed and not any("running" in k for k in changed)


def test_adapt_command_errors(tmp_path: Path, random_weights: Path, capsys) -> None:
    assert main(["adapt", "--weights", str(random_weights), "--data", str(tmp_path / "missing")]) == 2
    assert "no such folder or video" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["adapt", "--weights", str(random_weights), "--data", str(tmp_path / "empty"),
                 "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "no readable images" in capsys.readouterr().err
    assert main(["adapt", "--weights", str(random_weights), "--data", str(tmp_path / "empty"),
                 "-o", str(random_weights)]) == 2


def test_adapt_reads_every_kth_video_frame(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from modnet_matting.train.soc import load_frames
    from modnet_matting.video.synthetic import write_synthetic_video

    video = write_synthetic_video(tmp_path / "clip.mp4", frames=6, height=72, width=96, audio=False)
    found = load_frames(video, PRE, every=2)
    assert len(found) == 3 and found.frames[0].shape == (64, 64 * 96 // 72 // 32 * 32, 3)
