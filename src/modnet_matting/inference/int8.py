"""int8 post-training quantisation with NNCF for OpenVINO, calibrated on real photos.

int8 convolutions (VNNI) are the lever that takes MODNet under the real-time
targets on a 2-core CPU; the cost is accuracy, so a calibration run measures it:
the photos found are split into a calibration part and a held-out part, NNCF
sets the quantisation ranges from the first, and the int8 matte is compared with
the fp32 matte (eager PyTorch, the authors' way) on the second. That mean
absolute difference (MAD) is stored in the IR next to the weights config, and
``backend="auto"`` only uses an int8 model whose MAD is within
``ACCURACY_BOUND``.

Entry point for users: ``modnet export --format openvino-int8 --calibration DIR``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..io import IMAGE_SUFFIXES, ImageReadError, read_image
from ..weights import WeightsConfig
from .backends.openvino import OPENVINO_HALF_NORM, Accuracy, OpenVinoBackend, save_ir
from .backends.torch import TorchBackend
from .predictor import Predictor
from .preprocess import network_input

DEFAULT_CALIBRATION_SIZE = 160
DEFAULT_HOLDOUT = 40
#: Backbone blocks left in floating point: MobileNetV2's features 0-6 (strides 2 to 8), whose outputs
#: also feed the high-resolution branch. Measured on the v6 weights at 352 px (2026-12-08, 120
#: calibration and 40 held-out photos, docs/performance.md): every convolution but the first and
#: last in int8 gave MAD 0.0026 against fp32 (over ``ACCURACY_BOUND``), the high-resolution and
#: fusion branches in float 0.0025, only the backbone in int8 0.0023 (and no faster than bf16), the
#: whole backbone in float 0.0009; blocks 0-6 in float 0.0009 at the all-int8 model's speed (27.4 ms
#: at 608x352 against bf16's 38.6).
FLOAT_BACKBONE_BLOCKS = 7
_BLOCK = re.compile(r"/backbone/features\.(\d+)[./]")


def find_images(folders: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Image files under the folders (recursively), sorted, hidden files skipped."""
    found: list[Path] = []
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"calibration folder not found: {root}")
        found += [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith(".")]
    return sorted(set(found))


def calibration_photos(folders: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The photos under the folders (``find_images``); at least two, one to calibrate on and one to hold out."""
    paths = find_images(folders)
    if len(paths) < 2:
        where = ", ".join(map(str, folders))
        raise ValueError(f"need at least 2 photos to calibrate on, found {len(paths)} in {where}")
    return paths


def split_images(paths: Sequence[Path], calibration: int, holdout: int) -> tuple[list[Path], list[Path]]:
    """Evenly spaced picks (every set in a mixed folder is represented), disjoint calibration and held-out parts."""
    wanted = min(len(paths), calibration + holdout)
    if wanted == 0:
        return [], []
    picks = [paths[int(i * len(paths) / wanted)] for i in range(wanted)]
    held = picks[1::max(1, wanted // max(1, holdout))][:holdout] if holdout else []
    chosen = set(held)
    return [p for p in picks if p not in chosen][:calibration], held


def network_inputs(paths: Sequence[Path], config: WeightsConfig,
                   skipped: list[tuple[Path, str]] | None = None) -> list[np.ndarray]:
    """Each readable photo as a ``1 x 3 x H x W`` network input at the size inference would use."""
    pre = config.preprocess
    inputs = []
    for path in paths:
        try:
            rgb = read_image(path)
        except (ImageReadError, OSError) as exc:
            if skipped is not None:
                skipped.append((path, str(exc)))
            continue
        inputs.append(network_input(rgb, pre)[None])
    return inputs


def _float_layers(ov_model) -> list[str]:  # noqa: ANN001 - openvino.Model
    """Convolutions NNCF leaves in floating point: the first (it sees raw pixels) and the last (int8 steps
    would show as banding in the alpha), and the backbone's first ``FLOAT_BACKBONE_BLOCKS`` blocks in
    our graphs (an ONNX file from elsewhere, named otherwise, keeps only the first and last)."""
    convs = [op.get_friendly_name() for op in ov_model.get_ordered_ops()
             if op.get_type_name() in ("Convolution", "GroupConvolution")]
    if not convs:
        return []
    early = [name for name in convs
             if (block := _BLOCK.search(name)) is not None and int(block.group(1)) < FLOAT_BACKBONE_BLOCKS]
    return list(dict.fromkeys([convs[0], *early, convs[-1]]))


def quantize_openvino(onnx_path: str | os.PathLike[str], calibration: Sequence[np.ndarray],
                      preset: str = "mixed", fast_bias_correction: bool = True,
                      **nncf_options: object):  # noqa: ANN201 - openvino.Model
    """int8 OpenVINO model from an fp32 ONNX graph, ranges from the calibration inputs.

    "mixed" quantises weights symmetrically and activations asymmetrically: most
    activations here follow a ReLU and are never negative, so a symmetric grid
    would waste half its levels. ``nncf_options`` go to ``nncf.quantize`` as they are
    (``target_device``, ``advanced_parameters``: what ``benchmarks/int8_variants.py`` tries).
    """
    import nncf
    import openvino as ov

    if not calibration:
        raise ValueError("no calibration images could be read")
    model = ov.Core().read_model(str(onnx_path))
    presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
    return nncf.quantize(
        model,
        nncf.Dataset(list(calibration)),
        preset=presets[preset],
        subset_size=len(calibration),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=nncf.IgnoredScope(names=_float_layers(model)),
        **nncf_options,
    )


def compare_mattes(candidate: Predictor, reference: Predictor, paths: Sequence[Path],
                   progress: Callable[[int, int], None] | None = None,
                   memo: dict[Path, np.ndarray] | None = None) -> Accuracy:
    """Per-photo MAD between two predictors' mattes (full resolution), over readable photos.

    ``memo`` keeps the reference's mattes between calls (comparing several candidates).
    """
    memo = {} if memo is None else memo

    def pairs() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for index, path in enumerate(paths):
            try:
                rgb = read_image(path)
            except (ImageReadError, OSError):
                continue
            if path not in memo:
                memo[path] = reference.predict_rgb([rgb])[0]
            yield candidate.predict_rgb([rgb])[0], memo[path]
            if progress is not None:
                progress(index + 1, len(paths))

    try:
        return Accuracy.of(pairs())
    except ValueError:
        raise ValueError("none of the held-out photos could be read") from None


def calibrate_int8(
    model: torch.nn.Module,
    config: WeightsConfig,
    folders: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    calibration_size: int = DEFAULT_CALIBRATION_SIZE,
    holdout: int = DEFAULT_HOLDOUT,
    threads: int | None = None,
    log: Callable[[str], None] = print,
    weights_sha256: str | None = None,
) -> tuple[Path, Accuracy | None]:
    """Calibrate, measure on held-out photos, write the int8 IR; returns its path and the accuracy.

    ``weights_sha256`` (of the weights file) is recorded in the IR, for a shipped model to be matched
    to its weights."""
    from ..export import cached_onnx
    from ..model.fuse import fuse_modnet

    paths = calibration_photos(folders)
    calib_paths, held = split_images(paths, calibration_size, holdout)
    skipped: list[tuple[Path, str]] = []
    inputs = network_inputs(calib_paths, config, skipped)
    for path, why in skipped:
        log(f"skipped {path}: {why}")
    log(f"calibrating on {len(inputs)} photos ({len(paths)} found), holding out {len(held)}")
    onnx_path = cached_onnx(fuse_modnet(model, OPENVINO_HALF_NORM), config)
    quantized = quantize_openvino(onnx_path, inputs)
    accuracy = None
    if held:
        scratch = Path(tempfile.mkdtemp(prefix="modnet-int8-"))
        try:
            candidate = Predictor(OpenVinoBackend(save_ir(quantized, scratch / "m.xml", config), "fp32", threads),
                                  config)
            reference = Predictor(TorchBackend(model, "cpu", "fp32"), config)
            accuracy = compare_mattes(candidate, reference, held)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log(f"int8 vs fp32 on {accuracy.images} held-out photos: MAD {accuracy.mad:.5f} "
            f"(worst photo {accuracy.worst_mad:.5f}, worst pixel {accuracy.max_abs:.3f}); MAD is the mean "
            f"|alpha difference| per pixel, {accuracy.mad * 255:.1f} grey levels of 255; recorded in the IR, "
            f"where backend auto reads it")
    return save_ir(quantized, out, config, accuracy, weights_sha256), accuracy
