"""Can int8 get within the accuracy bound? NNCF post-training variants and quantisation-aware fine-tuning.

    python benchmarks/int8_variants.py [--weights modnet-people] [--photos ../shared/data/people]
        [--variants base,nooverflow,...] [--qat-steps 300 --qat-lr 1e-4 --qat-every 150]
        [--json benchmarks/results/int8_variants.json]

Same photo split as ``fast_accuracy.py`` (100 calibration photos spread over the
sets, 40 others held out); every candidate is an OpenVINO int8 model (float
parts in f32) whose mattes are compared with fp32 eager PyTorch on the held-out
photos (MAD, ``inference.int8.compare_mattes``). Post-training variants change one
NNCF setting at a time from ``inference.int8.quantize_openvino``'s. ``--qat-steps``
quantises the PyTorch network with NNCF instead (same first/last convolutions
kept in float), then fine-tunes it, fake-quantised, to reproduce the fp32
network's matte (L1 distillation, Adam, one photo per step at its inference
size, every second one flipped; photos outside the held-out part), converting
to OpenVINO to measure. NNCF builds a C++ extension for its PyTorch quantisers
on first use (minutes on two cores; ``NNCF_EXTENSION_LOAD_TIMEOUT=0`` is set so
it is not cut off).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from modnet_matting.inference import OPENVINO_HALF_NORM, OpenVinoBackend, Predictor, TorchBackend
from modnet_matting.inference.backends.openvino import save_ir
from modnet_matting.inference.int8 import compare_mattes, find_images, network_inputs, quantize_openvino, split_images
from modnet_matting.io import atomic_write
from modnet_matting.model import MatteOnly
from modnet_matting.model.fuse import fuse_modnet
from modnet_matting.weights import load_weights


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="modnet-people")
    parser.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/people")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="post-training variants ('' for none)")
    parser.add_argument("--qat-steps", type=int, default=0, help="fine-tuning steps (0: no fine-tuning)")
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    parser.add_argument("--qat-every", type=int, default=150, help="measure every N fine-tuning steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/int8_variants.json"))
    return parser.parse_args(argv)


def _variant_settings(name: str) -> dict:
    """NNCF keyword arguments of one post-training variant."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters as Advanced
    from nncf.quantization.advanced_parameters import OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet as Ranges

    full_int8 = {"overflow_fix": OverflowFix.DISABLE}  # 8-bit weights everywhere: VNNI does not overflow
    return {
        "base": {},
        "nooverflow": {"advanced_parameters": Advanced(**full_int8)},
        "nooverflow_cpu": {"target_device": nncf.TargetDevice.CPU, "advanced_parameters": Advanced(**full_int8)},
        "fullbc": {"fast_bias_correction": False, "advanced_parameters": Advanced(**full_int8)},
        "align": {"advanced_parameters": Advanced(**full_int8, disable_channel_alignment=False)},
        "meanminmax": {"advanced_parameters": Advanced(**full_int8,
                                                       activations_range_estimator_params=Ranges.MEAN_MINMAX)},
        "quantile": {"advanced_parameters": Advanced(**full_int8,
                                                     activations_range_estimator_params=Ranges.MEAN_QUANTILE)},
    }[name]


VARIANTS = ("base", "nooverflow", "nooverflow_cpu", "fullbc", "align", "meanminmax", "quantile")


class Judge:
    """Held-out comparison of an OpenVINO model with fp32 PyTorch (reference mattes computed once)."""

    def __init__(self, model: torch.nn.Module, config, held: list[Path], threads: int) -> None:  # noqa: ANN001
        self.config, self.held, self.threads = config, held, threads
        self.reference = Predictor(TorchBackend(model, "cpu", "fp32"), config)
        self.memo: dict = {}

    def __call__(self, ov_model, name: str) -> dict:  # noqa: ANN001 - openvino.Model
        path = save_ir(ov_model, Path(tempfile.mkdtemp(prefix="modnet-int8-")) / "m.xml", self.config)
        candidate = Predictor(OpenVinoBackend(path, "fp32", self.threads), self.config)
        accuracy = compare_mattes(candidate, self.reference, self.held, memo=self.memo)
        print(f"{name:20s} MAD {accuracy.mad:.5f}  worst photo {accuracy.worst_mad:.5f}  "
              f"worst pixel {accuracy.max_abs:.3f}", flush=True)
        return {"name": name, **accuracy.__dict__}


def post_training(onnx_path: Path, inputs: list, names: list[str], judge: Judge) -> list[dict]:
    return [judge(quantize_openvino(onnx_path, inputs, **_variant_settings(name)), f"ptq {name}") for name in names]


def fine_tune(model: torch.nn.Module, config, calibration: list, train_paths: list[Path], args: argparse.Namespace,  # noqa: ANN001
              judge: Judge) -> list[dict]:
    """NNCF PyTorch quantisation, then L1 distillation towards the fp32 matte; measured every ``qat_every`` steps."""
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "0")
    import nncf
    import openvino as ov
    from nncf.torch import wrap_model

    def network() -> torch.nn.Module:
        return MatteOnly(fuse_modnet(model, OPENVINO_HALF_NORM)).eval()

    graph = wrap_model(network(), torch.zeros(1, 3, 64, 64), trace_parameters=True).get_graph()
    convs = [node.node_name for node in graph.get_all_nodes() if node.node_type == "conv2d"]
    tensors = [torch.from_numpy(x) for x in calibration]
    student = nncf.quantize(network(), nncf.Dataset(tensors), preset=nncf.QuantizationPreset.MIXED,
                            subset_size=len(tensors), ignored_scope=nncf.IgnoredScope(names=[convs[0], convs[-1]]))
    teacher = network()

    def measure(name: str) -> dict:
        return judge(ov.convert_model(student, example_input=tensors[0]), name)

    rows = [measure("qat step 0 (torch ptq)")]
    optimiser = torch.optim.Adam(student.parameters(), lr=args.qat_lr)
    start, running = time.perf_counter(), None
    for step in range(args.qat_steps):
        x = torch.from_numpy(network_inputs([train_paths[step % len(train_paths)]], config)[0])
        if step % 2:
            x = x.flip(-1)
        with torch.no_grad():
            target = teacher(x)
        loss = (student(x) - target).abs().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}: running L1 {running:.5f}, {time.perf_counter() - start:.0f} s", file=sys.stderr)
        if (step + 1) % args.qat_every == 0 or step + 1 == args.qat_steps:
            rows.append({**measure(f"qat step {step + 1}"), "lr": args.qat_lr})
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, config = load_weights(args.weights)
    folders = sorted(p for p in args.photos.glob("*/images") if p.is_dir()) or [args.photos]
    photos = find_images(folders)
    calib_paths, held = split_images(photos, 100, 40)
    inputs = network_inputs(calib_paths, config)
    judge = Judge(model, config, held, args.threads)
    from modnet_matting.export import cached_onnx

    onnx_path = cached_onnx(fuse_modnet(model, OPENVINO_HALF_NORM), config)
    names = [n for n in args.variants.split(",") if n]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    rows = post_training(onnx_path, inputs, names, judge)
    if args.qat_steps:
        held_set = set(held)
        train_paths = [p for p in photos if p not in held_set]
        random.Random(0).shuffle(train_paths)
        rows += fine_tune(model, config, inputs, train_paths, args, judge)
    report = {"weights": str(args.weights), "reference": "torch fp32 eager", "calibration": len(inputs),
              "held_out": len(held), "date": time.strftime("%Y-%m-%d"), "results": rows}
    atomic_write(args.json, (json.dumps(report, indent=2) + "\n").encode())
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
