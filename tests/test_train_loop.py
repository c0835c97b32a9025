"""The training loop on generated data: learning, resume, checkpoints, config, backbone pretraining."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from modnet_matting.cli.main import main
from modnet_matting.io import save_image
from modnet_matting.model import MODNet
from modnet_matting.train import loop
from modnet_matting.train.backbone import load_backbone, save_backbone
from modnet_matting.train.config import TrainConfig, load_config
from modnet_matting.train.data import concat_sets
from modnet_matting.train.loop import Trainer, lr_factor
from modnet_matting.train.synthetic import synthetic_backgrounds, synthetic_portrait, synthetic_set
from modnet_matting.weights import CheckpointError, load_weights

QUIET = lambda *_: None  # noqa: E731


def tiny_config(tmp_path: Path, name: str = "tiny", **overrides) -> TrainConfig:
    """Crop 64, batch 4, no worker processes, validation off unless asked."""
    values = dict(name=name, runs_dir=str(tmp_path / "runs"), crop=64, batch_size=4, data_workers=0,
                  scale_min=0.8, scale_max=1.0, lr=3e-3, warmup_steps=4, total_steps=1000, val_every=0,
                  log_every=4, checkpoint_minutes=60, bf16=False, ema_decay=0.9, infer_reference=64, seed=1)
    values.update(overrides)
    return TrainConfig(**values)


def trainer_with_data(cfg: TrainConfig) -> Trainer:
    trainer = Trainer(cfg, log=QUIET)
    trainer.use_data(synthetic_set(12, 80, 72), [synthetic_set(2, 80, 72, seed=9, name="val")],
                     synthetic_backgrounds(4, 80, 72))
    return trainer


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class FakeBoard:
    """Stands in for tensorboard's SummaryWriter (not installed here)."""

    def __init__(self) -> None:
        self.scalars: dict[str, list[int]] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.setdefault(tag, []).append(step)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_loss_falls_by_a_factor_of_1_8_in_sixteen_steps(tmp_path: Path, monkeypatch) -> None:
    board = FakeBoard()
    monkeypatch.setattr(loop, "_tensorboard_writer", lambda path: board)
    cfg = tiny_config(tmp_path, val_every=16)
    trainer_with_data(cfg).run(max_steps=16)
    rows = read_csv(cfg.run_dir / "train_log.csv")
    assert [int(r["step"]) for r in rows] == [4, 8, 12, 16]
    # Steps 1-4 against steps 13-16: measured 5.03 -> 2.16 (2.3x) here; seed 2 gives 4.70 -> 2.32 (2.0x).
    first, last = float(rows[0]["total"]), float(rows[-1]["total"])
    assert last < first / 1.8, (first, last)
    # Validation ran on the EMA model and exported loadable weights with the training-scale preprocessing.
    val = read_csv(cfg.run_dir / "val_log.csv")
    assert val[0]["step"] == "16" and 0 <= float(val[0]["iou"]) <= 1
    model, config = load_weights(cfg.run_dir / "best.safetensors")
    assert config.preprocess.reference_size == 64 and config.card["samples_seen"] == 64
    assert board.scalars["train/total"] == [4, 8, 12, 16] and board.scalars["val/iou"] == [16]


def test_the_end_of_the_schedule_is_validated(tmp_path: Path) -> None:
    """A schedule that does not end on a multiple of val_every still judges (and exports) its last step."""
    cfg = tiny_config(tmp_path, val_every=4, total_steps=6)
    trainer = trainer_with_data(cfg)
    trainer.run()
    assert [r["step"] for r in read_csv(cfg.run_dir / "val_log.csv")] == ["4", "6"]
    trainer.run()  # already finished: nothing trains, nothing is validated again
    assert len(read_csv(cfg.run_dir / "val_log.csv")) == 2


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_continues_exactly_where_the_run_stopped(tmp_path: Path) -> None:
    whole = trainer_with_data(tiny_config(tmp_path, "whole", bf16=True))
    whole.run(max_steps=4)
    first = trainer_with_data(tiny_config(tmp_path, "cut", bf16=True, progress=True))
    first.run(max_steps=2)
    second = trainer_with_data(tiny_config(tmp_path, "cut", bf16=True))
    second.run(max_steps=2)
    assert second.step == whole.step == 4
    assert_same_state(second.model.state_dict(), whole.model.state_dict())
    assert_same_state(second.ema.state_dict(), whole.ema.state_dict())
    saved = torch.load(tmp_path / "runs" / "cut" / "last.pt", map_location="cpu", weights_only=True)
    assert saved["step"] == 4 and saved["mode"] == "supervised"
    assert_same_state(saved["model"], whole.model.state_dict())
    moments = saved["optimizer"]["state"][0]["exp_avg"]
    assert torch.equal(moments, whole.optimizer.state_dict()["state"][0]["exp_avg"])


def test_checkpoints_without_new_keys_still_resume(tmp_path: Path) -> None:
    """Runs started before the GPU/segmentation options existed have no "mode"/"scaler" keys."""
    cfg = tiny_config(tmp_path)
    trainer = trainer_with_data(cfg)
    trainer.save_checkpoint()
    state = torch.load(trainer.checkpoint_path, weights_only=True)
    del state["mode"], state["scaler"]
    torch.save(state, trainer.checkpoint_path)
    assert trainer_with_data(cfg).load_checkpoint()
    with pytest.raises(ValueError, match="supervised run"):
        trainer_with_data(tiny_config(tmp_path, mode="segmentation")).load_checkpoint()


def test_schedules() -> None:
    cfg = TrainConfig(warmup_steps=10, total_steps=110, schedule="cosine")
    assert lr_factor(cfg, 0) == pytest.approx(0.1) and lr_factor(cfg, 9) == pytest.approx(1.0)
    assert lr_factor(cfg, 10) == pytest.approx(1.0) and lr_factor(cfg, 110) == pytest.approx(0.02)
    assert lr_factor(cfg, 60) == pytest.approx(0.02 + 0.98 * 0.5)
    step = TrainConfig(warmup_steps=0, schedule="step", step_every=100)
    assert [lr_factor(step, s) for s in (0, 99, 100, 250)] == pytest.approx([1, 1, 0.1, 0.01])


def test_warm_restart_anneals_the_first_cycle_then_starts_a_lower_one() -> None:
    cfg = TrainConfig(warmup_steps=10, total_steps=310, restart_steps=[110, 210], restart_peak=0.5)
    assert lr_factor(cfg, 60) == pytest.approx(0.02 + 0.98 * 0.5)  # first cycle untouched
    assert lr_factor(cfg, 110) > lr_factor(cfg, 109) == pytest.approx(0.02, abs=1e-3)
    assert lr_factor(cfg, 119) == pytest.approx(0.5) and lr_factor(cfg, 209) == pytest.approx(0.02, abs=1e-3)
    assert lr_factor(cfg, 165) == pytest.approx(0.02 + 0.48 * 0.5)
    # the third cycle repeats the second's shape, ending at total_steps
    assert lr_factor(cfg, 265) == pytest.approx(lr_factor(cfg, 165)) and lr_factor(cfg, 310) == pytest.approx(0.02)
    parsed = load_config(None, ["warmup_steps=10", "total_steps=310", "restart_steps=[110, 210]"])
    assert parsed.restart_steps == [110, 210] and lr_factor(parsed, 265) == pytest.approx(lr_factor(cfg, 265))
    with pytest.raises(ValueError, match="restart_steps"):
        load_config(None, ["restart_steps=[later]"])
    for bad in ([200], [150, 120], [50, 55]):
        with pytest.raises(ValueError, match="restart_steps"):
            TrainConfig(warmup_steps=10, total_steps=100 if bad == [200] else 300, restart_steps=bad).check()


def test_config_file_and_overrides(tmp_path: Path, capsys) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nlr: 0.01\nsets: [x, y]\n")
    (tmp_path / "b.toml").write_text('name = "b"\nbatch_size = 2\n')
    cfg = load_config(tmp_path / "a.yaml", ["lr=3e-4", "bf16=false", "sets=[z]", "grad-clip=1.5"])
    assert (cfg.name, cfg.lr, cfg.bf16, cfg.sets, cfg.grad_clip) == ("a", 3e-4, False, ["z"], 1.5)
    assert load_config(tmp_path / "b.toml").batch_size == 2
    assert load_config(None, ["set_repeats={hsd: 2}"]).set_repeats == {"hsd": 2}
    for bad in (["nosuch=1"], ["optimizer=rmsprop"], ["device=tpu"], ["crop=100"], ["lr"], ["set_repeats=2"],
                ["set_repeats={nosuch: 2}"], ["set_repeats={hsd: 0}"], ["set_repeats={hsd: 1.5}"],
                ["composite_prob=1.5"], ["rotate_prob=-0.1"], ["patch_prob=2"], ["rotate_max_degrees=270"]):
        with pytest.raises(ValueError):
            load_config(None, bad)
    assert main(["train", "--config", str(tmp_path / "a.yaml"), "--print-config", "mode=segmentation"]) == 0
    assert "mode: segmentation" in capsys.readouterr().out
    assert main(["train", "--print-config", "schedule=linear"]) == 2
    assert "schedule='linear'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "runs_dir=" + str(tmp_path), "device=cuda"]) == 2
        assert "CUDA was requested" in capsys.readouterr().err


def test_set_repeats_weight_the_named_set_in_the_training_stream(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(tmp_path, sets=["a", "b"], set_repeats={"b": 3}), log=QUIET)
    trainer.use_data(concat_sets([synthetic_set(4, 80, 72, name="a"), synthetic_set(2, 80, 72, name="b")]), [],
                     synthetic_backgrounds(2, 80, 72))
    dataset = trainer._loader().dataset
    names = [trainer.train_data.stems[dataset.sample_index(p)].split("/")[0] for p in range(len(dataset))]
    assert len(dataset) == 10 and names.count("a") == 4 and names.count("b") == 6


def test_segmentation_pretraining_gives_a_backbone_modnet_can_load(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, "seg", mode="segmentation", batch_size=2, val_every=3)
    trainer = trainer_with_data(cfg)
    stats = trainer.run(max_steps=3)
    assert math.isfinite(stats["total"]) and {"bce", "dice"} <= stats.keys()
    backbone_file = cfg.run_dir / "backbone.safetensors"
    assert backbone_file.exists() and (cfg.run_dir / "val_log.csv").exists()
    supervised = trainer_with_data(tiny_config(tmp_path, "sup", backbone_weights=[str(backbone_file)]))
    supervised.load_checkpoint()
    assert_same_state(supervised.model.backbone.state_dict(), trainer.ema.backbone.state_dict())
    assert_same_state(supervised.ema.backbone.state_dict(), trainer.ema.backbone.state_dict())


@pytest.mark.parametrize("prefix", ["", "model.", "module.backbone.model."])
def test_backbone_checkpoints_in_the_authors_layouts(tmp_path: Path, prefix: str) -> None:
    torch.manual_seed(3)
    source = MODNet().backbone
    state = {prefix + key: value for key, value in source.model.state_dict().items()}
    state["classifier.1.weight"] = torch.zeros(1000, 1280)  # an ImageNet head is ignored
    torch.save(state, tmp_path / "human_seg.ckpt")
    target = MODNet().backbone
    assert load_backbone(target, tmp_path / "human_seg.ckpt") == len(source.model.state_dict())
    assert_same_state(target.state_dict(), source.state_dict())
    save_backbone(source, tmp_path / "ours.safetensors")
    assert load_backbone(MODNet().backbone, tmp_path / "ours.safetensors") > 0


def test_backbone_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    torch.save({"features.0.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_backbone(MODNet().backbone, tmp_path / "bad.ckpt")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "none.ckpt")
    with pytest.raises(CheckpointError, match="no MobileNetV2 backbone"):
        load_backbone(MODNet().backbone, tmp_path / "none.ckpt")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_gpu_steps(tmp_path: Path, precision: str) -> None:
    cfg = tiny_config(tmp_path, precision, device="cuda", bf16=precision == "bf16", fp16=precision == "fp16",
                      grad_clip=1.0)
    trainer = trainer_with_data(cfg)
    stats = trainer.run(max_steps=3)
    assert trainer.device.type == "cuda" and math.isfinite(stats["total"])
    state = torch.load(cfg.run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 3 and (precision == "bf16" or state["scaler"])


def mask_folder_run(tmp_path: Path, name: str, workers: int) -> list[str]:
    """Four generated photos with binary masks in ``data/people``; the `modnet train` overrides for them."""
    rng = np.random.default_rng(0)
    for i in range(4):
        image, alpha, _ = synthetic_portrait(96, 80, rng)
        save_image(tmp_path / "data" / "people" / "images" / f"p{i}.jpg", image)
        save_image(tmp_path / "data" / "people" / "masks" / f"p{i}.png", np.where(alpha > 127, 255, 0).astype("uint8"))
    return [f"data_root={tmp_path / 'data'}", "sets=[people]", "backgrounds=[]", f"cache_dir={tmp_path / 'c'}",
            f"runs_dir={tmp_path / 'runs'}", f"name={name}", "cache_short_side=64", "label_method=guided",
            "crop=64", "batch_size=2", f"data_workers={workers}", "bf16=false", "val_every=0", "log_every=1"]


def test_train_command_on_a_mask_folder(tmp_path: Path, capsys) -> None:
    overrides = mask_folder_run(tmp_path, "cli", workers=0)
    assert main(["train", *overrides, "--max-steps", "1"]) == 0
    assert "train samples" in capsys.readouterr().out
    state = torch.load(tmp_path / "runs" / "cli" / "last.pt", weights_only=True)
    assert state["step"] == 1 and (tmp_path / "c" / "people_64_guided.npz").exists()
    # --export turns the run's EMA weights into a weights file any command can use
    exported = tmp_path / "exported.safetensors"
    assert main(["train", *overrides, "--export", str(exported)]) == 0
    model, config = load_weights(exported)
    assert config.card["samples_seen"] == 2 and "validation" in config.card
    assert config.preprocess.reference_size == 320 and config.preprocess.resize_mode == "short_side"
    ema = torch.load(tmp_path / "runs" / "cli" / "last.pt", weights_only=True)["ema"]
    key = "f_branch.conv_f.1.layers.0.weight"
    assert torch.allclose(model.state_dict()[key], ema[key].float(), atol=1e-3)


def test_missing_init_weights_starts_from_scratch(tmp_path) -> None:
    """A fresh machine with neither runs/ nor bundled weights still trains (from scratch)."""
    from modnet_matting.train.config import TrainConfig
    from modnet_matting.train.loop import Trainer

    cfg = TrainConfig(runs_dir=str(tmp_path), init_weights=str(tmp_path / "absent.safetensors"), bf16=False)
    logs: list[str] = []
    trainer = Trainer(cfg, log=logs.append)
    assert trainer.load_checkpoint() is False
    assert trainer.step == 0
    assert any("starting from scratch" in line for line in logs)


def test_without_runs_the_schedule_continues_from_the_exported_weights(tmp_path: Path) -> None:
    """Committed weights of the same run carry its position, so a fresh machine does not restart the warm-up."""
    import shutil

    from modnet_matting.weights import save_weights

    trainer = trainer_with_data(tiny_config(tmp_path))
    trainer.run(max_steps=6)
    exported = save_weights(trainer.ema, tmp_path / "w.safetensors", trainer.weights_config({"iou": 0.5}))
    shutil.rmtree(tmp_path / "runs")  # a fresh machine: only the committed weights are left

    fresh = trainer_with_data(tiny_config(tmp_path, init_weights=str(exported)))
    assert fresh.load_checkpoint() is False
    assert (fresh.step, fresh.best) == (6, 0.5)
    assert lr_factor(fresh.cfg, fresh.step) < 1.0  # past the warm-up, not back at its start
    key = "f_branch.conv_f.1.layers.0.weight"
    assert torch.allclose(fresh.ema.state_dict()[key], trainer.ema.state_dict()[key], atol=1e-3)
    other = trainer_with_data(tiny_config(tmp_path, name="someone-else", init_weights=str(exported)))
    other.load_checkpoint()
    assert other.step == 0  # another run's weights are a starting point, not a position


def test_init_weights_are_not_overwritten_by_backbone_weights(tmp_path: Path) -> None:
    """A config keeps its backbone_weights for a first run; continuing from trained weights must keep their encoder."""
    from modnet_matting.weights import save_weights

    trainer = trainer_with_data(tiny_config(tmp_path))
    trainer.run(max_steps=2)
    exported = save_weights(trainer.ema, tmp_path / "w.safetensors", trainer.weights_config({"iou": 0.5}))
    save_backbone(MODNet().backbone, tmp_path / "other_backbone.safetensors")  # a different, untrained encoder
    fresh = trainer_with_data(tiny_config(tmp_path, "fresh", init_weights=str(exported),
                                          backbone_weights=[str(tmp_path / "other_backbone.safetensors")]))
    fresh.load_checkpoint()
    key = "backbone.model.features.1.conv.0.weight"
    assert torch.allclose(fresh.model.state_dict()[key], trainer.ema.state_dict()[key].float(), atol=1e-3)


def test_ctrl_c_to_the_process_group_saves_a_checkpoint(tmp_path: Path) -> None:
    """Ctrl-C or `pkill` signals data workers too; the run must still save and exit cleanly."""
    import os
    import signal
    import subprocess
    import sys
    import time

    overrides = [*mask_folder_run(tmp_path, "sig", workers=1), "total_steps=100000", "progress=false"]
    process = subprocess.Popen([sys.executable, "-m", "modnet_matting.cli.main", "train", *overrides],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    log = tmp_path / "runs" / "sig" / "train_log.csv"
    deadline = time.monotonic() + 120
    while not log.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)  # the whole group, as a terminal's Ctrl-C would
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 128 + signal.SIGTERM, output  # saved, then exits as a terminated tool does
    assert "Traceback" not in output
    state = torch.load(tmp_path / "runs" / "sig" / "last.pt", weights_only=True)
    assert state["step"] >= 1


def test_a_finished_run_says_it_is_complete(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny_config(tmp_path, total_steps=2)
    trainer_with_data(cfg).run()
    again = Trainer(cfg, log=print)
    again.use_data(synthetic_set(12, 80, 72), [synthetic_set(2, 80, 72, seed=9, name="val")],
                   synthetic_backgrounds(4, 80, 72))
    assert again.run() == {} and again.step == 2
    assert "is complete (step 2 of total_steps=2)" in capsys.readouterr().out


def test_missing_data_root_is_an_error_even_with_a_cache(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    cfg = tiny_config(tmp_path, data_root=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="data_root not found"):
        Trainer(cfg, log=QUIET).prepare_data()


def test_encoder_learning_rate_scale_and_frozen_blocks(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, backbone_lr_scale=0.1, freeze_backbone_blocks=2)
    trainer = trainer_with_data(cfg)
    before = {k: v.clone() for k, v in trainer.model.backbone.model.features[:2].state_dict().items()}
    trainer.run(max_steps=2)
    rates = sorted(group["lr"] for group in trainer.optimizer.param_groups)
    assert len(rates) == 2 and rates[0] == pytest.approx(0.1 * rates[1])
    after = trainer.model.backbone.model.features[:2].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no gradient, statistics kept (eval-mode BN)
    single = trainer_with_data(tiny_config(tmp_path, name="one"))
    assert len(single.optimizer.param_groups) == 1


def test_checkpoints_resume_whatever_optimiser_layout_they_were_saved_with(tmp_path: Path) -> None:
    """Runs of 2026-12-02 saved two groups (encoder, rest) even at backbone_lr_scale 1; earlier runs one."""
    split = trainer_with_data(tiny_config(tmp_path, backbone_lr_scale=0.5))
    split.run(max_steps=2)
    again = trainer_with_data(tiny_config(tmp_path))  # same run, scale 1 now: one group unless resuming
    assert again.load_checkpoint() is True and len(again.optimizer.param_groups) == 2
    again.run(max_steps=1)
    assert again.step == 3


def test_ema_moves_each_weight_towards_the_model_by_one_minus_decay(tmp_path: Path) -> None:
    """ema_new = decay * ema_old + (1 - decay) * model, for every floating tensor; counters are copied."""
    trainer = trainer_with_data(tiny_config(tmp_path, ema_decay=0.9))
    trainer.step = 1000  # past the early ramp: decay is the configured 0.9
    before = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p))
    model = trainer.model.state_dict()
    trainer._update_ema()
    after = trainer.ema.state_dict()
    for key, value in after.items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.9 * before[key] + 0.1 * model[key], atol=1e-6), key
        else:
            assert torch.equal(value, model[key]), key


def test_every_sample_option_of_the_config_reaches_the_samples() -> None:
    """A run's sample options are all passed on (a forgotten one would silently do nothing)."""
    cfg = TrainConfig(crop=96, scale_min=0.5, scale_max=1.5, composite_prob=0.25, jitter=0.1, object_prob=0.2,
                      negative_prob=0.15, busy_background_prob=0.35, grey_prob=0.45, low_light_prob=0.55,
                      rotate_prob=0.65, rotate_max_degrees=30, patch_prob=0.75, zoom_out_prob=0.85,
                      object_touch_prob=0.95)
    aug = loop.augment_config(cfg)
    for name in ("crop", "scale_min", "scale_max", "composite_prob", "jitter", "object_prob", "negative_prob",
                 "busy_background_prob", "grey_prob", "low_light_prob", "rotate_prob", "rotate_max_degrees",
                 "patch_prob", "zoom_out_prob", "object_touch_prob"):
        assert getattr(aug, name) == getattr(cfg, name), name


def test_export_can_blend_the_run_back_toward_its_start(tmp_path: Path) -> None:
    """export_blend_init=s writes (1 - s) * the run's EMA weights + s * init_weights, and says so in the card."""
    from modnet_matting.weights import WeightsConfig, save_weights

    start = save_weights(MODNet(), tmp_path / "start.safetensors", WeightsConfig())
    overrides = [*mask_folder_run(tmp_path, "blend", workers=0), f"init_weights={start}", "lr=0.05",
                 "warmup_steps=0", "ema_decay=0.5"]
    assert main(["train", *overrides, "--max-steps", "2"]) == 0
    plain, blended = tmp_path / "plain.safetensors", tmp_path / "blended.safetensors"
    assert main(["train", *overrides, "--export", str(plain)]) == 0
    assert main(["train", *overrides, "export_blend_init=0.25", "--export", str(blended)]) == 0
    key = "f_branch.conv_f.1.layers.0.weight"
    run, mixed, first = (load_weights(path)[0].state_dict()[key] for path in (plain, blended, start))
    assert not torch.allclose(run, first, atol=1e-2)  # the run moved away from its start
    assert torch.allclose(mixed, 0.75 * run + 0.25 * first, atol=2e-3)
    assert load_weights(blended)[1].card["blend"] == {"toward": str(start), "share": 0.25}
    assert "blend" not in load_weights(plain)[1].card
    trainer = Trainer(load_config(None, [*overrides, "export_blend_init=0.25"]), log=QUIET)
    assert "blend" not in trainer.weights_config({}).card  # the run's own files (best.safetensors) are not blends
    with pytest.raises(ValueError, match="export_blend_init"):
        TrainConfig(export_blend_init=0.5).check()  # nothing to blend toward
