"""``modnet train --config FILE [key=value ...]``: supervised training, resumable.

Under ``torchrun --nproc_per_node N -m modnet_matting.cli.main train ...`` (or the
``modnet`` script via ``torchrun --no-python``) each process joins the process
group from the environment: NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train MODNet (supervised; resumes from runs/<name>/last.pt)",
        description="Supervised MODNet training. Options come from the config file (YAML or TOML) "
        "and can be overridden as key=value (e.g. lr=3e-4 sets=[eg1800,hsd]).",
    )
    parser.add_argument("--config", help="YAML or TOML file of TrainConfig options")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--max-steps", type=int, help="stop after this many more steps")
    parser.add_argument("--max-minutes", type=float, help="stop after this many minutes (checkpoint saved)")
    parser.add_argument("--print-config", action="store_true", help="print the merged config and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.config import dump_config, load_config
    from .main import CLIError

    try:
        cfg = load_config(args.config, args.overrides)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    if args.print_config:
        print(dump_config(cfg), end="")
        return 0
    from ..train.distributed import init_from_env, shutdown
    from ..train.loop import Trainer

    init_from_env(cfg.device)
    try:
        try:
            trainer = Trainer(cfg)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        trainer.run(max_steps=args.max_steps, max_minutes=args.max_minutes)
    finally:
        shutdown()
    return 0
