"""Pretrained MobileNetV2 from TensorFlow Lite: layer mapping, batch-norm recalibration, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modnet_matting.cli.main import main
from modnet_matting.model import MobileNetV2Backbone
from modnet_matting.train.backbone import load_backbone
from modnet_matting.train.tflite_backbone import (
    FoldedBackbone,
    FoldedConv,
    _slim_position,
    load_folded,
    merge_folded,
    read_tflite_backbone,
    recalibrate_batchnorm,
)
from modnet_matting.weights import CheckpointError

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "mobilenetv2"
CLASSIFIER = MODELS / "mobilenet_v2_1.0_224_quant.tflite"
DEEPLAB = MODELS / "deeplabv3_mnv2_pascal_quant.tflite"
needs_models = pytest.mark.skipif(not CLASSIFIER.exists() or not DEEPLAB.exists(),
                                  reason="the TFLite MobileNetV2 files live in ../shared/models/mobilenetv2")


def random_folded(seed: int = 0) -> FoldedBackbone:
    """Every convolution of a random MobileNetV2 with a random folded bias, as an import would give."""
    torch.manual_seed(seed)
    reference = MobileNetV2Backbone()
    folded = FoldedBackbone(source="random")
    for name, module in reference.model.named_modules():
        if isinstance(module, nn.Conv2d):
            weight = module.weight.detach().clone()
            folded.convs[name] = FoldedConv(name, weight, 0.1 * torch.randn(weight.shape[0]))
    return folded


def test_tf_slim_names_map_to_features_indices() -> None:
    assert _slim_position("MobilenetV2/Conv/Conv2D_Fold") == (0, 0)
    assert _slim_position("MobilenetV2/expanded_conv/depthwise/depthwise_Fold") == (1, 1)
    assert _slim_position("MobilenetV2/expanded_conv/project/Conv2D_Fold") == (1, 2)
    assert _slim_position("MobilenetV2/expanded_conv_16/expand/Conv2D_Fold") == (17, 0)
    assert _slim_position("MobilenetV2/Conv_1/Conv2D_Fold") == (18, 0)
    assert _slim_position("aspp0/Conv2D_Fold") is None
    assert _slim_position("MobilenetV2/Logits/Conv2d_1c_1x1/Conv2D") is None


def test_recalibrated_batchnorm_keeps_the_function_and_survives_train_mode() -> None:
    folded = random_folded()
    backbone = MobileNetV2Backbone()
    load_folded(backbone, folded)
    rng = np.random.default_rng(0)
    photos = [torch.from_numpy(rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)) for _ in range(6)]
    batch = torch.cat(photos[:4])
    with torch.no_grad():
        before = backbone.eval()(batch)[2]
        train_before = backbone.train()(batch)[2]
    assert recalibrate_batchnorm(backbone, folded, photos) == 6
    assert backbone.training  # the mode is restored
    with torch.no_grad():
        after = backbone.eval()(batch)[2]
        train_after = backbone.train()(batch)[2]
    scale = before.abs().mean()
    assert (after - before).abs().max() / scale < 1e-3  # same network in eval mode
    # identity batch norm in train mode erases the folded scale and offset; recalibrated, it does not
    assert (train_after - before).abs().mean() < 0.5 * (train_before - before).abs().mean()


def test_missing_layers_are_refused_in_one_line_and_filled_by_a_second_file() -> None:
    full = random_folded()
    partial = FoldedBackbone("deeplab-like", {k: v for k, v in full.convs.items() if not k.startswith("features.18")})
    with pytest.raises(CheckpointError, match=r"no weights for 1 backbone convolutions, e.g. features\.18"):
        load_folded(MobileNetV2Backbone(), partial)
    merged = merge_folded([partial, full])
    assert len(merged.convs) == 52 and merged.convs["features.0.0"] is partial.convs["features.0.0"]
    load_folded(MobileNetV2Backbone(), merged)


def test_a_file_that_is_not_tflite_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a flatbuffer" * 64)
    with pytest.raises(CheckpointError, match="not a readable TensorFlow Lite model"):
        read_tflite_backbone(bad)
    assert main(["backbone", "import", str(bad), "-o", str(tmp_path / "b.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("modnet: error:") and "\n" not in err
    assert not (tmp_path / "b.safetensors").exists()


@needs_models
def test_classifier_weights_still_classify_grace_hopper_as_military_uniform() -> None:
    import cv2

    from modnet_matting.io import read_image

    folded = read_tflite_backbone(CLASSIFIER)
    assert len(folded.convs) == 52
    backbone = MobileNetV2Backbone().eval()
    load_folded(backbone, folded)
    image = read_image(Path(__file__).resolve().parents[1] / "src/modnet_matting/assets/grace_hopper.jpg")
    x = torch.from_numpy(cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    with torch.no_grad():
        features = backbone(x.float() / 127.5 - 1)[2]
        logits = F.conv2d(features.mean((2, 3), keepdim=True), folded.head[0].weight, folded.head[0].bias)
    assert int(logits.flatten().argmax()) == 653  # "military uniform" of 1001 classes, as the TFLite model says


@needs_models
def test_deeplab_encoder_lacks_the_last_layer_and_the_cli_fills_it(tmp_path: Path) -> None:
    deeplab = read_tflite_backbone(DEEPLAB)
    assert len(deeplab.convs) == 51 and not any(k.startswith("features.18") for k in deeplab.convs)
    shapes = dict(MobileNetV2Backbone().model.named_parameters())
    assert all(tuple(c.weight.shape) == tuple(shapes[f"{k}.weight"].shape) for k, c in deeplab.convs.items())
    photos = tmp_path / "photos"
    photos.mkdir()
    from modnet_matting.io import save_image

    rng = np.random.default_rng(1)
    for i in range(3):
        save_image(photos / f"p{i}.png", rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    out = tmp_path / "backbone.safetensors"
    assert main(["backbone", "import", str(DEEPLAB), str(CLASSIFIER), "--calibration", str(photos),
                 "-o", str(out)]) == 0
    target = MobileNetV2Backbone()
    assert load_backbone(target, out) == len(target.model.state_dict())
    assert not torch.allclose(target.model.features[3].conv[1].running_var, torch.ones(1))
