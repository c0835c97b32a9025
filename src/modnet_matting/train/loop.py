"""The supervised training loop: resumable at any minute, CPU-first, GPU- and DDP-ready.

A run lives in ``runs/<name>/``: ``last.pt`` (model, EMA model, optimiser,
step, RNG; written every ``checkpoint_minutes`` and on SIGINT/SIGTERM),
``best.safetensors`` (EMA weights with the best validation IoU, in our weights
format; ``backbone.safetensors`` in segmentation mode), ``train_log.csv`` and
``val_log.csv`` (and ``tensorboard/`` when that package is installed). Starting
the same command again continues from ``last.pt``; the sample stream is a pure
function of the seed and the position, so a resumed run sees the samples an
uninterrupted one would.

Under torchrun (``WORLD_SIZE`` > 1) every rank takes ``batch_size`` samples per
step from the same stream (rank r: positions r, r + world, ...), batch norm is
synchronised, and DDP averages the gradients of the per-rank mean losses, so N
ranks of batch B follow one process of batch N x B.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import math
import signal
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ..evaluate import metrics as M
from ..inference.hardware import pick_device
from ..inference.preprocess import network_size, resize
from ..model import MODNet
from ..weights import Preprocess, WeightsConfig, WeightsNotFoundError, load_weights, save_weights
from .augment import AugmentConfig, MattingSamples, StreamSampler
from .backbone import SegmentationNet, load_backbone, save_backbone, segmentation_losses
from .config import TrainConfig, dump_config
from .data import CachedSet, build_cache, concat_sets, load_backgrounds
from .distractors import distractor_validation, split_by_sequence
from .distributed import any_rank, convert_sync_batchnorm
from .forgetting import ForgettingHead, PascalTeacher, TeacherSamples, forgetting_loss
from .losses import LossWeights, modnet_losses
from .scenes import load_object_photos, object_scene_set


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine, step (x0.1) or constant.

    At each of ``restart_steps`` the cosine restarts (a warm restart): raising
    ``total_steps`` of an annealed run would otherwise jump the rate back to the middle
    of the old curve; a fresh, lower cycle continues training from the annealed weights.
    Listing every restart keeps a run of several sessions reproducible from one config.
    """
    start, end, peak = 0, cfg.total_steps, 1.0
    if cfg.schedule == "cosine" and cfg.restart_steps:
        bounds = [0, *cfg.restart_steps, cfg.total_steps]
        cycle = max(i for i, b in enumerate(bounds[:-1]) if b <= step)
        start, end = bounds[cycle], bounds[cycle + 1]
        peak = 1.0 if cycle == 0 else cfg.restart_peak
    local = step - start
    if local < cfg.warmup_steps:
        floor = 0.0 if start == 0 else 0.02
        return floor + (peak - floor) * (local + 1) / cfg.warmup_steps
    if cfg.schedule == "cosine":
        span = max(1, end - start - cfg.warmup_steps)
        progress = min(1.0, (local - cfg.warmup_steps) / span)
        return 0.02 + (peak - 0.02) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "step":
        return 0.1 ** (step // cfg.step_every)
    return 1.0


def augment_config(cfg: TrainConfig) -> AugmentConfig:
    """The run's sample options: each AugmentConfig field that TrainConfig also has, taken by name.

    By name, so a sample option added to both cannot be left out here and silently ignored.
    """
    shared = {f.name for f in dataclasses.fields(AugmentConfig)} & {f.name for f in dataclasses.fields(TrainConfig)}
    return AugmentConfig(**{name: getattr(cfg, name) for name in shared})


def _ignore_stop_signals(_worker_id: int) -> None:
    """Data workers leave SIGINT/SIGTERM to the main process.

    Ctrl-C or ``pkill`` reaches the whole process group; a worker that died on it
    would break the main process's next batch before it could save its checkpoint.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _run_device(cfg: TrainConfig, world: int) -> torch.device:
    """The configured device; under torchrun each rank takes the GPU ``LOCAL_RANK``."""
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        return torch.device("cuda", torch.cuda.current_device())
    return device


def _tensorboard_writer(path: Path) -> Any:
    """A SummaryWriter when the optional ``tensorboard`` package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(path))


class Trainer:
    """Owns the model, its EMA copy, the optimiser and the data stream of one run."""

    def __init__(self, cfg: TrainConfig, log=print) -> None:
        cfg.check()
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.cfg, self.log = cfg, log if self.rank == 0 else (lambda *_: None)
        self.device = _run_device(cfg, self.world)
        if cfg.fp16 and self.device.type != "cuda":
            raise ValueError("fp16=true needs a CUDA device; on the CPU use bf16=true")
        if cfg.mode == "segmentation" and cfg.init_weights:
            raise ValueError("init_weights is a MODNet file; in segmentation mode use backbone_weights")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # OpenCV's thread pool does not survive fork(): a forked DataLoader worker that
        # resizes with it can hang forever. Sequential OpenCV costs nothing at crop size.
        cv2.setNumThreads(0)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)
        self.model = SegmentationNet() if cfg.mode == "segmentation" else MODNet()
        if self.world > 1:
            self.model = convert_sync_batchnorm(self.model, self.device)
        self.model = self.model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self._setup_forgetting()
        self.optimizer = self._make_optimizer()
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.fp16)
        self.step, self.best, self.elapsed = 0, -math.inf, 0.0
        self.blended_share = 0.0  # set by blend_toward_init: the EMA weights are no longer the run's own
        self.train_data: CachedSet | None = None
        self.val_sets: list[CachedSet] = []
        self.backgrounds: list[np.ndarray] = []
        self.objects: CachedSet | None = None  # non-person objects for distractor samples
        self.photos: list[np.ndarray] = []  # person-free object photos (object_photos)
        self.extra_val: list[CachedSet] = []  # reported in validation, not part of its mean IoU
        self.loss_weights = LossWeights(cfg.loss_semantic, cfg.loss_detail, cfg.loss_matte)
        self._stop = False
        self.stopped_by: int | None = None  # the signal that ended the run (the CLI exits 128 + it)
        self._board: Any = None

    # ----------------------------------------------------------------- setup
    def _setup_forgetting(self) -> None:
        """``lwf_teacher``: the PASCAL teacher, the training-only head, and a hook that keeps the 1/32 features."""
        self.teacher: PascalTeacher | None = None
        self.forgetting_head: ForgettingHead | None = None
        self._deep_features: torch.Tensor | None = None
        if not self.cfg.lwf_teacher:
            return
        self.teacher = PascalTeacher(self.cfg.lwf_teacher)
        backbone = self._bare(self.model).backbone
        self.forgetting_head = ForgettingHead(backbone.enc_channels[-1]).to(self.device)
        if self.cfg.channels_last:
            self.forgetting_head = self.forgetting_head.to(memory_format=torch.channels_last)
        self._head_fitted = False

        def keep(_module: torch.nn.Module, _inputs: Any, outputs: tuple[torch.Tensor, ...]) -> None:
            self._deep_features = outputs[-1]

        backbone.register_forward_hook(keep)

    def _freeze_backbone_blocks(self) -> None:
        """``freeze_backbone_blocks``: the first encoder blocks get no gradient and keep their statistics."""
        for block in list(self._bare(self.model).backbone.model.features)[: self.cfg.freeze_backbone_blocks]:
            block.requires_grad_(False)

    def _encoder_bn_to_eval(self) -> None:
        """Frozen blocks, or every encoder block with ``freeze_backbone_bn``, normalise by stored statistics."""
        features = list(self._bare(self.model).backbone.model.features)
        count = len(features) if self.cfg.freeze_backbone_bn else self.cfg.freeze_backbone_blocks
        for block in features[:count]:
            for module in block.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def _param_groups(self, split: bool) -> list[dict[str, Any]]:
        """One group, or encoder and the rest, so the pretrained encoder can learn at ``backbone_lr_scale`` x lr.

        Split is chosen by the config, or by the layout a resumed checkpoint was saved with:
        runs before the split (one group) and runs of 2026-12-02 (always two) both resume.
        """
        model = self._bare(self.model)
        if not split:
            return [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]
        encoder = [p for p in model.backbone.parameters() if p.requires_grad] if hasattr(model, "backbone") else []
        ids = {id(p) for p in encoder}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest, "lr_scale": 1.0}]
        if encoder:
            groups.append({"params": encoder, "lr_scale": self.cfg.backbone_lr_scale})
        return groups

    def _head_groups(self) -> list[dict[str, Any]]:
        """The forgetting head's own group (last), when ``lwf_teacher`` is set."""
        if self.forgetting_head is None:
            return []
        return [{"params": list(self.forgetting_head.parameters()), "lr_scale": 1.0}]

    def _make_optimizer(self, split: bool | None = None) -> torch.optim.Optimizer:
        self._freeze_backbone_blocks()
        params = self._param_groups(self.cfg.backbone_lr_scale != 1.0 if split is None else split) + self._head_groups()
        if self.cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.cfg.lr, momentum=self.cfg.momentum, weight_decay=self.cfg.weight_decay
            )
        if self.cfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        raise ValueError(f"unknown optimizer {self.cfg.optimizer!r}; use adamw or sgd")

    def prepare_data(self) -> None:
        """Build or load the caches, then split train / validation by name hash."""
        cfg = self.cfg
        if not Path(cfg.data_root).is_dir():  # a cache alone could be stale: never train on it silently
            raise FileNotFoundError(f"data_root not found: {cfg.data_root}")
        train_parts, self.val_sets = [], []
        if self.world > 1 and self.rank != 0:
            dist.barrier()  # rank 0 builds missing caches first; the others then only read them
        for name in cfg.sets:
            cache = Path(cfg.cache_dir) / f"{name}_{cfg.cache_short_side}_{cfg.label_method}.npz"
            full = build_cache(Path(cfg.data_root) / name, cache, cfg.cache_short_side, cfg.label_method, log=self.log)
            full.name = name
            train_parts.append(full.subset(held_out=False))
            self.val_sets.append(full.subset(held_out=True).spread(cfg.val_per_set))
        if self.world > 1 and self.rank == 0:
            dist.barrier()
        self.train_data = concat_sets(train_parts)
        self.backgrounds = load_backgrounds(cfg.backgrounds, cfg.cache_short_side, held_out=False)
        if cfg.distractors:
            self._prepare_distractors()
        if cfg.object_photos:
            self._prepare_object_photos()
        self.log(f"train samples {len(self.train_data)}, backgrounds {len(self.backgrounds)}, "
                 f"objects {len(self.objects) if self.objects else 0}, object photos {len(self.photos)}, "
                 f"validation {', '.join(f'{s.name}:{len(s)}' for s in [*self.val_sets, *self.extra_val])}")

    def _prepare_distractors(self) -> None:
        """Object frames split by sequence: training objects, and the held-out distractor validation set."""
        cfg = self.cfg
        parts = []
        for folder in cfg.distractors:
            cache = Path(cfg.cache_dir) / f"objects_{Path(folder).name}_{cfg.cache_short_side}_{cfg.label_method}.npz"
            parts.append(build_cache(folder, cache, cfg.cache_short_side, cfg.label_method, log=self.log))
        objects = concat_sets(parts)
        self.objects = split_by_sequence(objects, held_out=False)
        if cfg.val_distractors:
            people = concat_sets(self.val_sets)
            scenes = load_backgrounds(cfg.backgrounds, cfg.cache_short_side, held_out=True)
            self.extra_val = [distractor_validation(people, split_by_sequence(objects, held_out=True), scenes,
                                                    cfg.val_distractors)]

    def _prepare_object_photos(self) -> None:
        """Object photos on the training side of the split; the held-out side builds the object-scene validation."""
        cfg = self.cfg
        train = load_object_photos(cfg.object_photos, held_out=False)
        self.photos = train.images
        if len(train.cutouts):  # masked photos (stamps) are pasted beside and in front of people too
            self.objects = train.cutouts if self.objects is None else concat_sets([self.objects, train.cutouts])
        if cfg.val_object_scenes:
            held = load_object_photos(cfg.object_photos, held_out=True)
            self.extra_val.append(object_scene_set(concat_sets(self.val_sets), held, cfg.val_object_scenes))

    def use_data(self, train: CachedSet, val_sets: list[CachedSet], backgrounds: list[np.ndarray]) -> None:
        """Give in-memory data directly (tests, notebooks)."""
        self.train_data, self.val_sets, self.backgrounds = train, val_sets, backgrounds

    def _loader(self) -> DataLoader:
        cfg = self.cfg
        dataset = self.sample_stream()
        if self.teacher is not None:
            dataset = TeacherSamples(dataset, self.teacher)
        start = self.step * cfg.batch_size * self.world
        sampler = StreamSampler(start, stride=self.world, offset=self.rank)
        return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.data_workers,
                          persistent_workers=cfg.data_workers > 0, prefetch_factor=4 if cfg.data_workers else None,
                          worker_init_fn=_ignore_stop_signals if cfg.data_workers else None,
                          pin_memory=self.device.type == "cuda")

    def sample_stream(self) -> MattingSamples:
        """The run's endless, seeded sample stream (what the loader batches; contact sheets read it too)."""
        return MattingSamples(self.train_data, self.backgrounds, augment_config(self.cfg), self.cfg.seed,
                              self.objects, self._sample_repeats(), self.photos)

    def _sample_repeats(self) -> list[int] | None:
        """Per-photo epoch repeats from ``set_repeats`` (training stems are named ``<set>/<photo>``)."""
        if not self.cfg.set_repeats:
            return None
        return [self.cfg.set_repeats.get(stem.split("/", 1)[0], 1) for stem in self.train_data.stems]

    # ------------------------------------------------------------ checkpoint
    @property
    def checkpoint_path(self) -> Path:
        return self.cfg.run_dir / "last.pt"

    def _bare(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        self.cfg.run_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self._bare(self.model).state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "best": self.best,
            "elapsed": self.elapsed,
            "torch_rng": torch.get_rng_state(),
            "config": dump_config(self.cfg),
            "mode": self.cfg.mode,
            "scaler": self.scaler.state_dict(),
        }
        if self.forgetting_head is not None:
            state["forgetting_head"] = self.forgetting_head.state_dict()
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        """Resume from ``last.pt``; else start from ``init_weights``; else load ``backbone_weights``."""
        if self.checkpoint_path.exists():
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
            mode = state.get("mode", "supervised")
            if mode != self.cfg.mode:
                raise ValueError(f"{self.checkpoint_path} is a {mode} run; this config says mode={self.cfg.mode}")
            self._bare(self.model).load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            if self.forgetting_head is not None and "forgetting_head" not in state:
                raise ValueError(f"{self.checkpoint_path} was trained without lwf_teacher; start a new run to add it")
            if self.forgetting_head is None and "forgetting_head" in state:
                raise ValueError(f"{self.checkpoint_path} was trained with lwf_teacher; set it to resume")
            if self.forgetting_head is not None:
                self.forgetting_head.load_state_dict(state["forgetting_head"])
                self._head_fitted = True
            saved_groups = len(state["optimizer"]["param_groups"]) - len(self._head_groups())
            if saved_groups != len(self.optimizer.param_groups) - len(self._head_groups()):
                self.optimizer = self._make_optimizer(split=saved_groups > 1)
                if saved_groups == 1:
                    self.log(f"warning: {self.checkpoint_path} has one optimiser group: backbone_lr_scale="
                             f"{self.cfg.backbone_lr_scale} is not applied to this run")
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.step, self.best, self.elapsed = int(state["step"]), float(state["best"]), float(state["elapsed"])
            torch.set_rng_state(state["torch_rng"])
            self.log(f"resumed {self.checkpoint_path} at step {self.step}")
            return True
        if self.cfg.init_weights:
            try:
                model, config = load_weights(self.cfg.init_weights)
            except WeightsNotFoundError as exc:
                # A fresh machine without runs/ continues from the bundled default weights; the
                # very first run has none yet and starts from scratch.
                self.log(f"init_weights unavailable ({exc}); starting from scratch")
                return False
            self._bare(self.model).load_state_dict(model.state_dict())
            self.ema.load_state_dict(model.state_dict())
            self.log(f"initialised from {self.cfg.init_weights}")
            self._continue_schedule(config.card)
            return False  # a whole trained network: backbone_weights would overwrite its encoder
        if self.cfg.backbone_weights:
            self._load_backbone_weights()
        return False

    def _load_backbone_weights(self) -> None:
        """``backbone_weights``: TensorFlow Lite encoders (recalibrated on training photos) or one checkpoint."""
        files = self.cfg.backbone_weights
        backbone = self._bare(self.model).backbone
        tflite = [f for f in files if str(f).lower().endswith(".tflite")]
        if tflite and len(tflite) != len(files):
            raise ValueError("backbone_weights: give .tflite files only, or a single checkpoint")
        if tflite:
            from .tflite_backbone import import_backbone

            photos = self.train_data.spread(self.cfg.calibration_photos).images if self.train_data else None
            message = import_backbone(backbone, tflite, photos)
        elif len(files) == 1:
            message = f"{load_backbone(backbone, files[0])} tensors from {files[0]}"
        else:
            raise ValueError("backbone_weights: only .tflite encoders can be combined")
        self.ema.backbone.load_state_dict(backbone.state_dict())
        self.log(f"backbone: {message}")

    def _continue_schedule(self, card: dict[str, Any]) -> None:
        """Weights exported by this same run carry its position: continue the schedule there.

        Without it a fresh machine (``runs/`` gone) would restart the warm-up and the
        full learning rate on already trained weights. The optimiser's moments are not in
        a weights file, so they start afresh; the sample stream resumes at the position.
        """
        if card.get("source") != self._source():
            return
        try:
            step = int(card["samples_seen"]) // (self.cfg.batch_size * self.world)
            best = float(card["validation"]["iou"])
            elapsed = float(card.get("train_hours", card.get("cpu_hours", 0.0))) * 3600
        except (KeyError, TypeError, ValueError):
            return
        self.step, self.best, self.elapsed = step, best, elapsed
        self.log(f"continuing the schedule at step {step} (from the weights' card; optimiser state starts afresh)")

    def _source(self) -> str:
        return "modnet-matting training run " + self.cfg.name

    def _device_name(self) -> str:
        """Where this stretch of training ran: the hours in a card mean little without it."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"{self.device.type} ({torch.get_num_threads()} threads)"

    def blend_toward_init(self) -> None:
        """``export_blend_init``: move the EMA weights that share of the way back to ``init_weights``.

        A short continuation can win on what it was aimed at (here the distractor images) and lose
        a little elsewhere; the straight line between the two weights often keeps most of both
        (WiSE-FT, Wortsman et al. 2022), and for a continuation of the same network it is cheap to
        measure. Batch-norm statistics are blended like the weights.
        """
        share = self.cfg.export_blend_init
        if not share:
            return
        start = load_weights(self.cfg.init_weights)[0].state_dict()
        blended = {key: torch.lerp(value.float(), start[key].float(), share).to(value.dtype)
                   if value.is_floating_point() else value for key, value in self.ema.state_dict().items()}
        self.ema.load_state_dict(blended)
        self.blended_share = share
        self.log(f"exported weights blended {share:g} of the way back to {self.cfg.init_weights}")

    def weights_config(self, metrics: dict[str, Any]) -> WeightsConfig:
        cfg = self.cfg
        pre = Preprocess(reference_size=cfg.infer_reference, resize_mode=cfg.infer_mode)
        card = {
            "source": self._source(),
            "data": ", ".join(cfg.sets) + " (research-use photos; see docs/model_card.md)",
            "licence": "weights trained on research-use data: non-commercial research use",
            "samples_seen": self.step * cfg.batch_size * self.world,
            "train_hours": round(self.elapsed / 3600, 3),
            "trained_on": self._device_name(),
            "validation": metrics,
        }
        if self.blended_share:
            card["blend"] = {"toward": str(cfg.init_weights), "share": self.blended_share}
        if cfg.backbone_weights:  # the pretrained files carry their own licence (see docs/model_card.md)
            card["backbone_init"] = ", ".join(Path(f).name for f in cfg.backbone_weights)
        return WeightsConfig(preprocess=pre, card=card)

    # -------------------------------------------------------------- training
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.fp16:
            return torch.autocast(self.device.type, dtype=torch.float16)
        if self.cfg.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _losses(self, image: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        matte = batch["matte"].to(self.device, image.dtype, non_blocking=True)
        with self._autocast():
            outputs = self.model(image)
        if self.cfg.mode == "segmentation":
            return segmentation_losses(outputs.to(matte.dtype), matte)
        trimap = batch["trimap"].to(self.device, image.dtype, non_blocking=True)
        semantic, detail, pred = outputs
        dtype = image.dtype  # the losses run in the parameters' precision, whatever autocast gave
        losses = modnet_losses(semantic.to(dtype), detail.to(dtype), pred.to(dtype), matte, trimap, image,
                               self.loss_weights)
        if self.forgetting_head is not None:
            with self._autocast():
                student = self.forgetting_head(self._deep_features)
            teacher = batch["teacher"].to(self.device, dtype, non_blocking=True)
            losses["lwf"] = self.cfg.lwf_weight * forgetting_loss(student.to(dtype), teacher, self.cfg.lwf_temperature)
            losses["total"] = losses["total"] + losses["lwf"]
        return losses

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * group.get("lr_scale", 1.0) * lr_factor(cfg, self.step)
        # Inputs follow the parameters' dtype (float32; float64 when a test checks the maths exactly).
        dtype = next(self.model.parameters()).dtype
        image = batch["image"].to(self.device, dtype, non_blocking=True)
        if cfg.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        self.model.train()
        self._encoder_bn_to_eval()
        if self.forgetting_head is not None:
            self.forgetting_head.train()
        losses = self._losses(image, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total"]).backward()
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._update_ema()
        self.step += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema += (1 - decay) * (model - ema), all floating tensors in one fused call.

        One call for the ~600 tensors instead of two small kernels each, which on a GPU are
        bound by launch overhead rather than arithmetic.
        """
        decay = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))
        model_state = self._bare(self.model).state_dict()
        ema_float, model_float = [], []
        for key, value in self.ema.state_dict().items():
            if value.is_floating_point():
                ema_float.append(value)
                model_float.append(model_state[key].detach())
            else:
                value.copy_(model_state[key])
        torch._foreach_lerp_(ema_float, model_float, 1 - decay)

    @torch.no_grad()
    def _predict_val(self, image: np.ndarray, pre: Preprocess) -> np.ndarray:
        h, w = image.shape[:2]
        nh, nw = network_size(h, w, pre)
        x = torch.from_numpy(resize(image, nh, nw)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        with self._autocast():
            pred = self.ema.forward_matte(x.to(self.device).contiguous(memory_format=torch.channels_last))
        return np.clip(resize(pred[0, 0].float().cpu().numpy(), h, w), 0, 1)

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """EMA model at the inference scale: IoU (alpha >= 0.5) and MAD per held-out set.

        The distractor set (``extra_val``) reports MAD and the false-foreground share
        (``ff_``: predicted person where the truth is background) outside the mean IoU,
        so the figure that picks the best weights stays comparable across recipes.
        """
        pre = Preprocess(reference_size=self.cfg.infer_reference, resize_mode=self.cfg.infer_mode)
        results: dict[str, Any] = {}
        ious, mads = [], []
        for data in self.val_sets:
            set_iou, set_mad = [], []
            for image, alpha in zip(data.images, data.alphas):
                pred = self._predict_val(image, pre)
                set_iou.append(M.iou(pred, alpha))  # uint8 labels are read as alpha / 255
                set_mad.append(M.mad(pred, alpha))
            if set_iou:
                results[f"iou_{data.name}"] = round(float(np.mean(set_iou)), 4)
                results[f"mad_{data.name}"] = round(float(np.mean(set_mad)), 5)
                ious.append(np.mean(set_iou))
                mads.append(np.mean(set_mad))
        results["iou"] = round(float(np.mean(ious)), 4) if ious else float("nan")
        results["mad"] = round(float(np.mean(mads)), 5) if mads else float("nan")
        for data in self.extra_val:
            pairs = [(self._predict_val(image, pre), alpha) for image, alpha in zip(data.images, data.alphas)]
            results[f"mad_{data.name}"] = round(float(np.mean([M.mad(p, t) for p, t in pairs])), 5)
            results[f"ff_{data.name}"] = round(float(np.mean([M.false_foreground(p, t) for p, t in pairs])), 5)
        return results

    @torch.no_grad()
    def _fit_forgetting_head(self, batches: int = 8) -> None:
        """A new run's head starts as the least-squares map from the encoder's features to the teacher.

        The crops come from a stream with another seed, so the run's own samples are unchanged.
        """
        if self.forgetting_head is None or self._head_fitted:
            return
        samples = TeacherSamples(MattingSamples(self.train_data, self.backgrounds, augment_config(self.cfg),
                                                self.cfg.seed + 7919, self.objects, None, self.photos), self.teacher)
        backbone = self._bare(self.model).backbone
        saved = copy.deepcopy(backbone.state_dict())  # batch norms in training mode would move their statistics
        self.model.train()
        self._encoder_bn_to_eval()  # the features as training will see them
        features, logits = [], []
        for start in range(0, batches * self.cfg.batch_size, self.cfg.batch_size):
            items = [samples[i] for i in range(start, start + self.cfg.batch_size)]
            image = torch.stack([item["image"] for item in items]).to(self.device)
            with self._autocast():
                features.append(backbone(image)[-1].float().cpu())
            logits.append(torch.stack([item["teacher"] for item in items]).float())
        backbone.load_state_dict(saved)
        error = self.forgetting_head.cpu().fit(torch.cat(features), torch.cat(logits))
        self.forgetting_head.to(self.device)
        self._head_fitted = True
        self.log(f"forgetting head fitted on {batches * self.cfg.batch_size} crops (logit MSE {error:.3f})")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.log(f"signal {signum}: saving and stopping")
        self._stop = True
        self.stopped_by = signum

    @property
    def complete(self) -> bool:
        return self.step >= self.cfg.total_steps

    def _wrap_ddp(self) -> None:
        if self.world > 1 and not isinstance(self.model, torch.nn.parallel.DistributedDataParallel):
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        with contextlib.suppress(ValueError):  # not in the main thread
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def run(self, max_steps: int | None = None, max_minutes: float | None = None) -> dict[str, Any]:
        """Train until ``total_steps``, ``max_steps`` more steps, or ``max_minutes``."""
        cfg = self.cfg
        if self.train_data is None:
            self.prepare_data()
        self.load_checkpoint()
        if self.complete:
            self.log(f"{cfg.run_dir} is complete (step {self.step} of total_steps={cfg.total_steps}); raise "
                     "total_steps, with a warm restart in restart_steps, to train on")
            return {}
        self._fit_forgetting_head()
        self._wrap_ddp()
        previous_handlers = self._install_signals()
        main = self.rank == 0
        if main:
            cfg.run_dir.mkdir(parents=True, exist_ok=True)
            (cfg.run_dir / "config.yaml").write_text(dump_config(cfg))
        self._board = _tensorboard_writer(cfg.run_dir / "tensorboard") if main and cfg.tensorboard else None
        stop_step = min(cfg.total_steps, self.step + max_steps) if max_steps else cfg.total_steps
        bar = None
        if main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=stop_step, initial=self.step, unit="step", dynamic_ncols=True)
        try:
            return self._train_until(stop_step, max_minutes, bar)
        finally:
            if bar is not None:
                bar.close()
            if self._board is not None:
                self._board.close()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)

    def _train_until(self, stop_step: int, max_minutes: float | None, bar: Any) -> dict[str, Any]:
        cfg = self.cfg
        last_stats: dict[str, Any] = {}
        started, last_save, window = time.monotonic(), time.monotonic(), time.monotonic()
        base_elapsed, running = self.elapsed, []
        for batch in self._loader():
            if self.step >= stop_step or self._stop:
                break
            last_stats = self.train_step(batch)
            running.append(last_stats)
            self.elapsed = base_elapsed + time.monotonic() - started
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{last_stats['total']:.4f}", refresh=False)
            if self.step % cfg.log_every == 0 and self.rank == 0:
                now = time.monotonic()
                row = {"step": self.step, "samples": self.step * cfg.batch_size * self.world,
                       "hours": round(self.elapsed / 3600, 4), "lr": self.optimizer.param_groups[0]["lr"],
                       **{k: round(float(np.mean([r[k] for r in running])), 5) for k in running[0]},
                       "img_per_s": round(len(running) * cfg.batch_size * self.world / (now - window), 2)}
                _append_csv(cfg.run_dir / "train_log.csv", row)
                self._board_scalars("train", row)
                line = " ".join(f"{k}={v}" for k, v in row.items())
                if bar is not None:
                    bar.write(line)
                else:
                    self.log(line)
                running, window = [], now
            if cfg.val_every and self.step % cfg.val_every == 0 and self.rank == 0:
                self._validate_and_export()
            if time.monotonic() - last_save > cfg.checkpoint_minutes * 60:
                self.save_checkpoint()
                last_save = time.monotonic()
            out_of_time = max_minutes is not None and time.monotonic() - started > max_minutes * 60
            if self.world > 1:  # every rank must leave the loop at the same step
                self._stop = any_rank(self._stop or out_of_time, self.device)
            if out_of_time:
                break
        finished = bool(last_stats) and self.step >= cfg.total_steps  # this call trained to the end
        if finished and cfg.val_every and self.step % cfg.val_every and self.rank == 0:
            self._validate_and_export()  # the annealed end of the schedule is the model to judge
        self.save_checkpoint()
        if self.cfg.mode == "segmentation" and self.rank == 0 and not self.backbone_path.exists():
            save_backbone(self.ema.backbone, self.backbone_path)
        return last_stats

    @property
    def backbone_path(self) -> Path:
        return self.cfg.run_dir / "backbone.safetensors"

    def _board_scalars(self, prefix: str, row: dict[str, Any]) -> None:
        if self._board is None:
            return
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self._board.add_scalar(f"{prefix}/{key}", value, self.step)
        self._board.flush()

    def _validate_and_export(self) -> None:
        metrics = self.validate()
        row = {"step": self.step, "samples": self.step * self.cfg.batch_size * self.world,
               "hours": round(self.elapsed / 3600, 4), **metrics}
        _append_csv(self.cfg.run_dir / "val_log.csv", row)
        self._board_scalars("val", row)
        self.log("validation " + " ".join(f"{k}={v}" for k, v in row.items()))
        if metrics["iou"] > self.best:
            self.best = metrics["iou"]
            if self.cfg.mode == "segmentation":
                target = save_backbone(self.ema.backbone, self.backbone_path)
            else:
                target = save_weights(self.ema, self.cfg.run_dir / "best.safetensors", self.weights_config(metrics))
            self.log(f"new best iou {self.best}: {target}")
        self.save_checkpoint()
