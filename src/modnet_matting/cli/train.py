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
    parser.add_argument(
        "--export",
        metavar="FILE",
        help="do not train: validate the EMA weights of runs/<name>/last.pt and write them to FILE (.safetensors)",
    )
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
        if args.export:
            return export_checkpoint(trainer, args.export)
        trainer.run(max_steps=args.max_steps, max_minutes=args.max_minutes)
    finally:
        shutdown()
    # saved and stopped by SIGTERM/SIGINT: exit as a killed tool does, so schedulers see it did not finish
    return 128 + trainer.stopped_by if trainer.stopped_by else 0


def export_checkpoint(trainer, path: str) -> int:  # noqa: ANN001 - a train.loop.Trainer
    """Validate the EMA model of the run's last checkpoint (blended per ``export_blend_init``) and save it.

    Lets a user take weights from a run at any moment (validation otherwise only
    happens every ``val_every`` steps), with the measured figures in the model card.
    """
    from ..weights import save_weights
    from .main import CLIError

    if not trainer.checkpoint_path.exists():
        raise CLIError(f"no checkpoint to export: {trainer.checkpoint_path} does not exist")
    trainer.prepare_data()
    trainer.load_checkpoint()
    trainer.blend_toward_init()
    metrics = trainer.validate()
    save_weights(trainer.ema, path, trainer.weights_config(metrics))
    print(f"step {trainer.step}: " + " ".join(f"{k}={v}" for k, v in metrics.items()))
    print(f"wrote {path}")
    return 0
