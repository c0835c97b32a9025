"""Learning without forgetting: the PASCAL teacher, the training-only head, its loss and its place in a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modnet_matting.io import read_image
from modnet_matting.model import MODNet
from modnet_matting.train import forgetting
from modnet_matting.train.forgetting import PASCAL_CLASSES, ForgettingHead, PascalTeacher, forgetting_loss
from modnet_matting.weights import load_weights
from test_train_loop import tiny_config, trainer_with_data

PASCAL_TFLITE = Path(__file__).resolve().parents[2] / "shared/models/mobilenetv2/deeplabv3_mnv2_pascal_quant.tflite"
DEMO = Path(forgetting.__file__).resolve().parents[1] / "assets" / "grace_hopper.jpg"
PERSON = 15


def colour_teacher(_self: PascalTeacher, image: np.ndarray) -> np.ndarray:
    """A stand-in teacher whose logits are a fixed function of the local colour (learnable by a 1x1 head)."""
    grid = image.reshape(11, image.shape[0] // 11, 11, image.shape[1] // 11, 3).mean((1, 3)) / 127.5 - 1
    mix = np.random.default_rng(0).normal(size=(3, PASCAL_CLASSES)).astype(np.float32)
    return (4 * grid @ mix).transpose(2, 0, 1).astype(np.float16)


@pytest.fixture
def fake_teacher(tmp_path: Path, monkeypatch) -> str:
    path = tmp_path / "teacher.tflite"
    path.write_bytes(b"not read: __call__ is replaced")
    monkeypatch.setattr(PascalTeacher, "__call__", colour_teacher)
    return str(path)


def test_the_fitted_head_recovers_a_linear_map_from_features_to_logits() -> None:
    rng = torch.Generator().manual_seed(0)
    features = torch.randn(6, 40, 4, 4, generator=rng)
    truth = torch.nn.Conv2d(40, PASCAL_CLASSES, 1)
    logits = truth(features).detach()
    head = ForgettingHead(40)
    error = head.fit(features, logits, ridge=1e-4)
    assert error < 1e-4
    assert torch.allclose(head(features), logits, atol=1e-2)


def test_the_loss_is_zero_on_the_teachers_own_logits_and_grows_with_disagreement() -> None:
    teacher = torch.randn(2, PASCAL_CLASSES, 6, 6) * 3
    same = forgetting_loss(teacher, teacher)
    other = forgetting_loss(torch.roll(teacher, 1, dims=1), teacher)
    assert abs(float(same)) < 1e-5 and float(other) > 0.5
    # the teacher's finer grid is averaged onto the student's
    fine = teacher.repeat_interleave(3, -1).repeat_interleave(3, -2)
    assert abs(float(forgetting_loss(teacher, fine))) < 1e-5


def lwf_losses(trainer, steps: int) -> list[float]:
    return [trainer.run(max_steps=1)["lwf"] for _ in range(steps)]


def test_a_run_with_the_teacher_learns_its_classes_and_exports_modnet_alone(tmp_path: Path, fake_teacher: str) -> None:
    def config(name: str, **overrides):
        return tiny_config(tmp_path, name, crop=352, batch_size=2, lwf_teacher=fake_teacher, lwf_weight=1.0,
                           freeze_backbone_bn=True, **overrides)

    # the network barely moves (lr 1e-9): the least-squares head must beat an unfitted one on new crops
    fitted, unfitted = trainer_with_data(config("fitted", lr=1e-9)), trainer_with_data(config("unfitted", lr=1e-9))
    unfitted._head_fitted = True
    assert np.mean(lwf_losses(fitted, 3)) < 0.85 * np.mean(lwf_losses(unfitted, 3))
    trainer = trainer_with_data(config("lwf"))
    stats = trainer.run(max_steps=3)
    assert "lwf" in stats and stats["total"] > stats["lwf"] > 0
    saved = torch.load(trainer.checkpoint_path, map_location="cpu", weights_only=True)
    assert set(saved["forgetting_head"]) == {"conv.weight", "conv.bias"}
    assert len(saved["optimizer"]["param_groups"]) == 2  # MODNet's parameters, then the head's
    # resumed: the head comes back from the checkpoint instead of being fitted again
    again = trainer_with_data(config("lwf"))
    again.run(max_steps=1)
    assert again.step == 4
    # a run without the teacher cannot silently continue one with it, and the reverse
    with pytest.raises(ValueError, match="lwf_teacher"):
        trainer_with_data(tiny_config(tmp_path, "lwf", crop=352, batch_size=2)).load_checkpoint()
    plain = tiny_config(tmp_path, "plain")
    trainer_with_data(plain).save_checkpoint()
    with pytest.raises(ValueError, match="without lwf_teacher"):
        trainer_with_data(tiny_config(tmp_path, "plain", lwf_teacher=fake_teacher)).load_checkpoint()
    # exported weights are MODNet's tensors only
    from modnet_matting.weights import save_weights

    target = save_weights(again.ema, tmp_path / "lwf.safetensors", again.weights_config({"iou": 0.0}))
    model, _ = load_weights(target)
    assert set(model.state_dict()) == set(MODNet().state_dict())


def test_a_teacher_file_that_is_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="lwf_teacher not found"):
        PascalTeacher(tmp_path / "absent.tflite")


@pytest.mark.skipif(not PASCAL_TFLITE.is_file(), reason="needs ../shared/models/mobilenetv2 (the PASCAL model)")
def test_the_pascal_teacher_sees_a_person_in_the_demo_photo() -> None:
    logits = PascalTeacher(PASCAL_TFLITE)(read_image(DEMO))
    assert logits.shape == (PASCAL_CLASSES, 33, 33) and logits.dtype == np.float16
    labels = logits.astype(np.float32).argmax(0)
    assert (labels == PERSON).mean() > 0.3
    assert np.isin(labels, [0, PERSON]).mean() > 0.95
