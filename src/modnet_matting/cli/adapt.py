"""``modnet adapt``: SOC adaptation of trained weights to unlabelled images or a video.

Reads a folder of images or every k-th frame of a video, runs SOC (batch 1,
Adam 1e-5, frozen norm layers, a frozen copy per epoch) and writes the adapted
weights. ``OUT.soc.pt`` keeps the state: run the same command again to continue
after ``--max-minutes`` or an interruption.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

from .main import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adapt",
        help="adapt weights to unlabelled images or a video with SOC (resumable)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("--weights", default=None, help="registry name or weights file to start from")
    parser.add_argument("--data", required=True, help="folder of images, or a video file")
    parser.add_argument("-o", "--output", type=Path, help="adapted weights (.safetensors; default: "
                        "<weights>-soc-<data>.safetensors in the current folder)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--every", type=int, default=1, help="for a video: use every k-th frame")
    parser.add_argument("--max-frames", type=int, help="use at most this many images or frames")
    parser.add_argument("--size", type=int, help="network reference size (default: the weights' own)")
    parser.add_argument("--max-minutes", type=float, help="stop after this long (state saved; rerun to continue)")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


# Card entries measured on the source weights: they do not describe the adapted ones, so they are dropped.
SOURCE_MEASUREMENTS = ("accuracy", "validation")


def _stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(text.rstrip("/")).stem) or "data"


def run(args: argparse.Namespace) -> int:
    from ..inference.hardware import pick_device
    from ..train.soc import FrameSet, SOCAdapter, SOCConfig, load_frames
    from ..weights import load_weights, resolve, save_weights, with_card

    if args.epochs < 1 or args.lr <= 0 or args.every < 1:
        raise CLIError("--epochs and --every must be >= 1 and --lr > 0")
    weights_path, _ = resolve(args.weights)
    model, config = load_weights(args.weights)
    output = args.output or Path(f"{_stem(str(weights_path))}-soc-{_stem(args.data)}.safetensors")
    if output.suffix != ".safetensors":
        raise CLIError(f"{output}: the adapted weights are written as .safetensors")
    if output.exists() and output.resolve() == weights_path.resolve():
        raise CLIError(f"{output} is the input weights file; choose another -o")
    pre = config.preprocess if args.size is None else replace(config.preprocess, reference_size=args.size)
    try:
        device = pick_device(args.device)
        frames: FrameSet = load_frames(args.data, pre, args.every, args.max_frames)
    except ValueError as exc:  # VideoReadError, device errors
        raise CLIError(str(exc)) from None
    except ImportError:
        raise CLIError("reading a video needs PyAV: pip install 'modnet-matting[video]'") from None
    for problem in frames.problems:
        print(f"warning: {problem}")
    cfg = SOCConfig(epochs=args.epochs, lr=args.lr, seed=args.seed, checkpoint_minutes=args.checkpoint_minutes)
    identity = {"weights": str(weights_path.resolve()), "data": str(Path(args.data).resolve())}
    checkpoint = output.with_name(output.name + ".soc.pt")
    try:
        adapter = SOCAdapter(model, frames, pre, cfg, checkpoint, device, identity=identity)
        adapter.resume()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(f"SOC on {len(frames)} {'images' if frames.paths else 'frames'} from {args.data}, {cfg.epochs} epochs, "
          f"device {device}")
    done = adapter.run(args.max_minutes)
    card = {"soc": {"data": Path(args.data).name, "frames": len(frames), "epochs_done": adapter.epoch,
                    "lr": cfg.lr, "from": weights_path.name}}
    kept = {k: v for k, v in config.card.items() if k not in SOURCE_MEASUREMENTS}
    # fp16 like every weights file we ship; the full-precision state to resume from is in .soc.pt
    save_weights(adapter.model.eval(), output, with_card(replace(config, card=kept), **card))
    if done:
        print(f"wrote {output} ({adapter.epoch} epochs)")
    else:
        print(f"stopped at epoch {adapter.epoch + 1}, frame {adapter.position}; wrote {output}. "
              "Run the same command to continue.")
    return 0
