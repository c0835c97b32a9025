"""Two gloo processes with synchronised batch norm follow one process with the same global batch.

The comparison runs in float64. In float32 the randomly initialised network on
64 px crops is so ill-conditioned (batch norm over 2x2 maps of nearly dead
channels) that one process's first-layer gradients already differ by about 3%
between float32 and float64, so no float32 run, distributed or not, can match
another to 1e-5 after a few SGD steps. In float64 the two runs agree to ~1e-10.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from modnet_matting.train.config import TrainConfig
from modnet_matting.train.distributed import DistributedBatchNorm2d
from modnet_matting.train.loop import Trainer
from modnet_matting.train.synthetic import synthetic_backgrounds, synthetic_set

STEPS = 2
GLOBAL_BATCH = 4


def config(runs: Path, name: str, batch_size: int) -> TrainConfig:
    # No autocast, SGD (the paper's optimiser; Adam would magnify rounding in near-zero gradients).
    return TrainConfig(name=name, runs_dir=str(runs), crop=64, batch_size=batch_size, data_workers=0,
                       scale_min=0.8, scale_max=1.0, optimizer="sgd", lr=0.01, warmup_steps=0, total_steps=100,
                       val_every=0, log_every=100, checkpoint_minutes=60, bf16=False, ema_decay=0.9, seed=5)


def run_steps(cfg: TrainConfig) -> Trainer:
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.model.double()
    trainer.ema.double()
    trainer.optimizer = trainer._make_optimizer()
    trainer.use_data(synthetic_set(10, 80, 72), [], synthetic_backgrounds(3, 80, 72))
    trainer.run(max_steps=STEPS)
    return trainer


def _worker(rank: int, world: int, port: int, runs: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        trainer = run_steps(config(Path(runs), "ddp", GLOBAL_BATCH // world))
        assert isinstance(trainer.model, torch.nn.parallel.DistributedDataParallel)
        assert any(isinstance(m, DistributedBatchNorm2d) for m in trainer.model.modules())
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp" / "last.pt", map_location="cpu", weights_only=True)
    single = run_steps(config(tmp_path, "single", GLOBAL_BATCH))
    assert ddp["step"] == single.step == STEPS
    reference = single.model.state_dict()
    assert ddp["model"].keys() == reference.keys()
    # Parameters and batch-norm statistics (relative for the large running variances).
    worst = max(((ddp["model"][k] - v).abs() / v.abs().clamp_min(1)).max().item()
                for k, v in reference.items() if v.is_floating_point())
    print(f"largest relative difference {worst:.2e}")
    assert worst < 1e-5, worst
    assert all(torch.equal(ddp["model"][k], v) for k, v in reference.items() if not v.is_floating_point())
    # The runs really moved: equality is not just the shared initialisation.
    start = Trainer(config(tmp_path, "start", GLOBAL_BATCH), log=lambda *_: None).model.state_dict()
    assert max((start[k] - v).abs().max().item() for k, v in reference.items() if v.is_floating_point()) > 1e-3
