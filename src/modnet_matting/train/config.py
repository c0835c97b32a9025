"""Training configuration: one flat dataclass, read from YAML or TOML, overridable.

``key=value`` overrides on the command line are parsed as YAML scalars or
lists, so ``lr=3e-4``, ``bf16=false`` and ``sets=[eg1800,hsd]`` all work.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class TrainConfig:
    name: str = "modnet"
    runs_dir: str = "runs"
    # data
    data_root: str = "../shared/data/people"
    sets: list[str] = field(default_factory=lambda: ["eg1800", "celebamask", "ccp", "hsd"])
    # how many times a set's photos appear in each training epoch (default 1): weights a set that the
    # others outnumber, without copying files
    set_repeats: dict[str, int] = field(default_factory=dict)
    backgrounds: list[str] = field(default_factory=lambda: ["../shared/data/backgrounds"])
    cache_dir: str = "cache"
    cache_short_side: int = 384
    label_method: str = "closed_form"
    data_workers: int = 1
    # augmentation
    crop: int = 256
    scale_min: float = 0.65
    scale_max: float = 1.05
    composite_prob: float = 0.5
    jitter: float = 0.2
    # "is this a person?" training (train/distractors.py): folders of non-person objects with masks
    # (images/ + masks/, frames named <sequence>_<frame>, split by sequence)
    distractors: list[str] = field(default_factory=list)
    object_prob: float = 0.0  # paste a large object behind or in front of the person
    object_touch_prob: float = 0.0  # share of those objects placed on the person's outline (touching it)
    negative_prob: float = 0.0  # a sample with no person (object frame, scene, collage), target 0
    busy_background_prob: float = 0.0  # composite over a collage or a recoloured scene
    grey_prob: float = 0.0
    low_light_prob: float = 0.0
    rotate_prob: float = 0.0  # a composite's person turned by up to rotate_max_degrees (tilted, lying people)
    rotate_max_degrees: float = 90.0
    patch_prob: float = 0.0  # busy, saturated patches painted inside the person (printed clothes): still person
    val_distractors: int = 40  # held-out composites with objects (+ object frames alone) in validation
    # person-free photos (folders of <source>/images/, masks/ where a source has them; train/scenes.py): zoom-out
    # scene backgrounds, negatives and collage tiles; the masked ones are pasted like distractor objects
    object_photos: list[str] = field(default_factory=list)
    zoom_out_prob: float = 0.0  # share of composites that become zoom-out scenes (smaller people, object photos)
    val_object_scenes: int = 60  # held-out people over held-out object photos (+ photos alone) in validation
    # optimisation
    batch_size: int = 8
    optimizer: str = "adamw"  # adamw | sgd (the paper's: lr 0.01, momentum 0.9, step decay)
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | step | constant
    warmup_steps: int = 300
    total_steps: int = 20000
    step_every: int = 5000
    # warm restarts (cosine only): at each of restart_steps a new cosine cycle rises over
    # warmup_steps to restart_peak x lr and anneals by the next restart (the last by
    # total_steps); empty = a single cycle from step 0
    restart_steps: list[int] = field(default_factory=list)
    restart_peak: float = 0.5
    grad_clip: float = 0.0
    ema_decay: float = 0.999
    loss_semantic: float = 10.0
    loss_detail: float = 10.0
    loss_matte: float = 1.0
    # speed
    bf16: bool = True
    channels_last: bool = True
    threads: int = 0  # 0 = torch default
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda
    fp16: bool = False  # fp16 autocast with a GradScaler (CUDA only); takes precedence over bf16
    # what to train
    mode: str = "supervised"  # supervised (MODNet) | segmentation (backbone pretraining on person masks)
    # MobileNetV2 files loaded into the backbone when no checkpoint exists: our/the authors' checkpoints, or
    # TensorFlow Lite encoders (batch norm recalibrated on training photos); the first file holding a layer gives it
    backbone_weights: list[str] = field(default_factory=list)
    calibration_photos: int = 256  # training photos that give recalibrated batch norms their statistics
    backbone_lr_scale: float = 1.0  # the encoder's learning rate relative to lr
    freeze_backbone_blocks: int = 0  # features.0 .. N-1 get no gradient (backward stops earlier)
    freeze_backbone_bn: bool = False  # the encoder's batch norms keep their statistics (eval mode) in training
    # learning without forgetting (train/forgetting.py): the DeepLabV3 PASCAL .tflite whose 21-class logits of
    # each crop a training-only head on the encoder's 1/32 features must reproduce; empty = off
    lwf_teacher: str = ""
    lwf_weight: float = 0.1
    lwf_temperature: float = 2.0
    # bookkeeping
    seed: int = 0
    log_every: int = 20
    val_every: int = 500
    val_per_set: int = 40
    checkpoint_minutes: float = 10.0
    progress: bool = False  # tqdm progress bar (rank 0)
    tensorboard: bool = True  # also log to runs/<name>/tensorboard when the tensorboard package is installed
    init_weights: str = ""  # a weights file or registry name to start from when no checkpoint exists
    # --export writes the EMA weights moved this share of the way back to init_weights (a weight-space blend,
    # as in WiSE-FT): keeps some of what the starting weights did better than a short continuation
    export_blend_init: float = 0.0
    # the preprocessing recorded with exported weights (inference at the training scale)
    infer_reference: int = 320
    infer_mode: str = "short_side"

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def check(self) -> None:
        """Reject unknown choices up front (a one-line error instead of a failure hours later)."""
        choices = {
            "optimizer": ("adamw", "sgd"),
            "schedule": ("cosine", "step", "constant"),
            "label_method": ("closed_form", "guided"),
            "device": ("auto", "cpu", "cuda", "mps"),
            "mode": ("supervised", "segmentation"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}={getattr(self, key)!r}: use one of {', '.join(allowed)}")
        if self.batch_size < 1 or self.crop < 32 or self.crop % 32:
            raise ValueError("batch_size must be >= 1 and crop a multiple of 32")
        unknown = sorted(set(self.set_repeats) - set(self.sets))
        if unknown or any(n < 1 for n in self.set_repeats.values()):
            raise ValueError(f"set_repeats: each key must be one of sets ({', '.join(self.sets)}) and each count >= 1"
                             + (f"; not in sets: {', '.join(unknown)}" if unknown else ""))
        for key in (f.name for f in dataclasses.fields(self) if f.name.endswith("_prob")):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key}={getattr(self, key)}: a probability must be between 0 and 1")
        if not 0.0 <= self.export_blend_init <= 1.0 or (self.export_blend_init and not self.init_weights):
            raise ValueError(f"export_blend_init={self.export_blend_init}: use 0 to 1, with init_weights set")
        if self.lwf_teacher and (self.mode != "supervised" or self.lwf_weight <= 0 or self.lwf_temperature <= 0):
            raise ValueError("lwf_teacher needs mode=supervised and a positive lwf_weight and lwf_temperature")
        if not 0.0 <= self.rotate_max_degrees <= 180.0:
            raise ValueError(f"rotate_max_degrees={self.rotate_max_degrees}: use 0 to 180")
        bounds = [0, *self.restart_steps, self.total_steps]
        if self.restart_steps and any(end - start <= self.warmup_steps for start, end in zip(bounds, bounds[1:])):
            raise ValueError("restart_steps must rise, each cycle longer than warmup_steps, and end before total_steps")


_INT_LISTS = {f.name for f in dataclasses.fields(TrainConfig) if f.type == "list[int]"}  # the others hold names


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Give a value the type of its option's default (YAML reads ``3e-4`` as a string, ``1`` as an int)."""
    if value is None and isinstance(default, (str, list, dict)):
        return type(default)()
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, str):
        return value if isinstance(value, str) else str(value)
    elif isinstance(default, list):
        if key in _INT_LISTS:
            if isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return value
        else:
            if isinstance(value, list):
                return [str(v) for v in value]
            if isinstance(value, str):
                return [value]
    elif isinstance(default, dict):
        if isinstance(value, dict) and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            return {str(k): v for k, v in value.items()}
        raise ValueError(f"{key}={value!r} should be a mapping of names to whole numbers, like {{hsd: 2}}")
    else:
        return value
    raise ValueError(f"{key}={value!r} should be a {type(default).__name__}")


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the file (YAML or TOML), then ``key=value`` overrides."""
    values: dict[str, Any] = {}
    if path:
        text = Path(path).read_text()
        if str(path).endswith(".toml"):
            import tomllib

            values = tomllib.loads(text)
        else:
            values = yaml.safe_load(text) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of options")
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, _, raw = item.partition("=")
        values[key.strip().replace("-", "_")] = _parse_value(raw)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown option(s): {', '.join(unknown)}")
    defaults = TrainConfig()
    values = {key: _coerce(key, value, getattr(defaults, key)) for key, value in values.items()}
    try:
        cfg = TrainConfig(**values)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    cfg.check()
    return cfg


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
