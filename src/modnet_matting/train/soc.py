"""SOC: self-supervised sub-objectives consistency on unlabelled images or video frames.

MODNet's three heads should agree: the semantic estimate with a blurred, 1/16
copy of the matte, and the detail and matte heads, inside the transition band,
with a frozen copy of the model taken at the start of each epoch (so the
boundary does not drift while the semantics adapt). Batch 1, Adam 1e-5
(betas 0.9, 0.99), norm layers frozen, as the authors ran it.

The authors' code divides by the band's pixel count, which is zero on a frame
without a person and makes the loss NaN; here an empty band contributes zero.

A run is resumable: ``<out>.soc.pt`` holds the model, the frozen copy, the
optimiser and the position (epoch, index) in the per-epoch shuffled order.
"""

from __future__ import annotations

import copy
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import grey_dilation, grey_erosion
from torch import nn

from ..inference.preprocess import network_size, normalise, resize
from ..io import IMAGE_SUFFIXES, ImageReadError, atomic_write, read_image
from ..weights import Preprocess
from .losses import semantic_target

SEMANTIC_SCALE = 100.0
FG_THRESHOLD = 0.1
PSEUDO_THRESHOLD = 0.01
BAND_FRACTION = 0.05


@dataclass(frozen=True)
class SOCConfig:
    epochs: int = 10
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.99)
    seed: int = 0
    checkpoint_minutes: float = 10.0


def freeze_norms(model: nn.Module) -> nn.Module:
    """Batch norm in eval mode (running statistics) with its affine parameters fixed.

    Instance norm has no running statistics or parameters in MODNet, so it is
    per-image in every mode; it is left alone.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            module.requires_grad_(False)
    return model


def transition_band(fg: torch.Tensor) -> torch.Tensor:
    """Where grey dilation and erosion of the foreground differ, window ``int((h + w) / 2 * 0.05)``."""
    h, w = fg.shape[-2:]
    side = max(1, int((h + w) / 2 * BAND_FRACTION))
    masks = fg.detach().float().cpu().numpy()
    band = np.zeros_like(masks)
    for index in np.ndindex(masks.shape[:2]):
        plane = masks[index]
        band[index] = grey_dilation(plane, size=(side, side)) != grey_erosion(plane, size=(side, side))
    return torch.from_numpy(band).to(fg.device)


def soc_losses(
    semantic: torch.Tensor, detail: torch.Tensor, matte: torch.Tensor,
    frozen_detail: torch.Tensor, frozen_matte: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The two consistency losses (spec's L_soc_s and L_soc_d) and their sum, key "total"."""
    semantic_fg = F.interpolate((semantic.detach() > FG_THRESHOLD).float(), scale_factor=16, mode="bilinear",
                                align_corners=False)
    band = transition_band((matte.detach() > FG_THRESHOLD).float() * semantic_fg)
    blurred = semantic_target(matte)  # 1/16 bilinear then the fixed 3x3 Gaussian; gradients flow to the matte
    pseudo_semantic = blurred.detach() * (blurred.detach() > PSEUDO_THRESHOLD)
    pseudo_matte = semantic.detach() * (semantic.detach() > PSEUDO_THRESHOLD)
    consistency = F.mse_loss(semantic, pseudo_semantic) + F.mse_loss(blurred, pseudo_matte)
    pixels = band.sum((1, 2, 3))
    # An empty band has a zero numerator too: clamping the count gives 0 instead of 0 / 0.
    per_sample = ((band * (detail - frozen_detail).abs()).sum((1, 2, 3))
                  + (band * (matte - frozen_matte).abs()).sum((1, 2, 3))) / pixels.clamp_min(1)
    out = {"semantic": SEMANTIC_SCALE * consistency, "detail": per_sample.mean()}
    out["total"] = out["semantic"] + out["detail"]
    out["band"] = pixels.float().mean() / band[0].numel()
    return out


# ---------------------------------------------------------------- frames
@dataclass
class FrameSet:
    """Unlabelled inputs: image files (read when used) or video frames (kept at network size)."""

    source: str
    paths: list[Path] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths) or len(self.frames)

    def rgb(self, index: int) -> np.ndarray:
        return read_image(self.paths[index]) if self.paths else self.frames[index]


def _fits(rgb: np.ndarray, pre: Preprocess) -> np.ndarray:
    return resize(rgb, *network_size(rgb.shape[0], rgb.shape[1], pre))


def load_frames(source: str | Path, pre: Preprocess, every: int = 1, max_frames: int | None = None) -> FrameSet:
    """A folder of images (unreadable ones reported and left out) or every ``every``-th video frame."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no such folder or video: {source}")
    found = FrameSet(str(source))
    if source.is_dir():
        for path in sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                read_image(path)
            except ImageReadError as exc:
                found.problems.append(str(exc))
                continue
            found.paths.append(path)
            if max_frames and len(found.paths) >= max_frames:
                break
        return found
    from ..video.reader import VideoReader

    with VideoReader(source) as reader:
        for frame in reader:
            if frame.index % max(1, every) == 0:
                found.frames.append(_fits(frame.rgb, pre))
                if max_frames and len(found.frames) >= max_frames:
                    break
        found.problems += reader.problems
    return found


# --------------------------------------------------------------- adapter
class SOCAdapter:
    """Runs SOC epochs over a FrameSet; checkpoint and resume at any frame."""

    def __init__(self, model: nn.Module, frames: FrameSet, pre: Preprocess, cfg: SOCConfig,
                 checkpoint: Path, device: torch.device | str = "cpu", log: Callable[[str], None] = print,
                 identity: dict[str, str] | None = None) -> None:
        if not len(frames):
            raise ValueError(f"{frames.source}: no readable images or frames")
        self.frames, self.pre, self.cfg, self.log = frames, pre, cfg, log
        self.device = torch.device(device)
        self.checkpoint, self.identity = Path(checkpoint), identity or {}
        self.model = freeze_norms(model.to(self.device).train())
        self.frozen = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad],
                                          lr=cfg.lr, betas=cfg.betas)
        self.epoch, self.position, self.steps, self.elapsed = 0, 0, 0, 0.0
        self.history: list[dict[str, float]] = []

    @property
    def finished(self) -> bool:
        return self.epoch >= self.cfg.epochs

    def _tensor(self, index: int) -> torch.Tensor:
        x = normalise(_fits(self.frames.rgb(index), self.pre), self.pre)
        return torch.from_numpy(x)[None].to(self.device)

    def step(self, image: torch.Tensor) -> dict[str, float]:
        """One SOC iteration on one image."""
        self.model.train()
        freeze_norms(self.model)
        semantic, detail, matte = self.model(image)
        with torch.no_grad():
            _, frozen_detail, frozen_matte = self.frozen.forward_train(image)
        losses = soc_losses(semantic, detail, matte, frozen_detail, frozen_matte)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        self.steps += 1
        return {key: float(value.detach()) for key, value in losses.items()}

    @torch.no_grad()
    def evaluate(self, indices: Sequence[int] | None = None) -> float:
        """Mean SOC loss of the current model against itself (the semantic consistency left)."""
        self.model.eval()
        total = []
        for index in indices if indices is not None else range(len(self.frames)):
            semantic, detail, matte = self.model.forward_train(self._tensor(index))
            total.append(float(soc_losses(semantic, detail, matte, detail, matte)["total"]))
        self.model.train()
        freeze_norms(self.model)
        return float(np.mean(total))

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.frames))

    def run(self, max_minutes: float | None = None) -> bool:
        """Continue until all epochs are done (True) or time runs out (False; checkpoint saved)."""
        try:
            return self._run(max_minutes)
        except KeyboardInterrupt:
            self.save()  # Ctrl-C keeps the work done so far
            raise

    def _run(self, max_minutes: float | None) -> bool:
        started = last_save = time.monotonic()
        base = self.elapsed
        while not self.finished:
            if self.position == 0:
                self.frozen.load_state_dict(self.model.state_dict())  # the epoch's frozen copy
            order, epoch_stats = self.order(self.epoch), []
            while self.position < len(order):
                stats = self.step(self._tensor(int(order[self.position])))
                if not all(math.isfinite(v) for v in stats.values()):
                    raise FloatingPointError(f"SOC loss is not finite at epoch {self.epoch}: {stats}")
                self.history.append(stats)
                epoch_stats.append(stats)
                self.position += 1
                self.elapsed = base + time.monotonic() - started
                if time.monotonic() - last_save > self.cfg.checkpoint_minutes * 60:
                    self.save()
                    last_save = time.monotonic()
                if max_minutes is not None and time.monotonic() - started > max_minutes * 60:
                    self.save()
                    return False
            if epoch_stats:
                means = {k: float(np.mean([s[k] for s in epoch_stats])) for k in epoch_stats[0]}
                self.log(f"epoch {self.epoch + 1}/{self.cfg.epochs}: " + " ".join(
                    f"{k}={v:.5f}" for k, v in means.items()))
            self.epoch, self.position = self.epoch + 1, 0
            self.save()
        return True

    # ------------------------------------------------------- checkpoint
    def save(self) -> None:
        state = {
            "model": self.model.state_dict(), "frozen": self.frozen.state_dict(),
            "optimizer": self.optimizer.state_dict(), "epoch": self.epoch, "position": self.position,
            "steps": self.steps, "elapsed": self.elapsed, "frames": len(self.frames), **self.identity,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write(self.checkpoint, buffer.getvalue())

    def resume(self) -> bool:
        """Load the checkpoint when there is one for the same weights and inputs."""
        if not self.checkpoint.exists():
            return False
        state: dict[str, Any] = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        for key, value in {**self.identity, "frames": len(self.frames)}.items():
            if state.get(key) != value:
                raise ValueError(f"{self.checkpoint} belongs to another run ({key}: {state.get(key)!r} "
                                 f"!= {value!r}); delete it or choose another output")
        self.model.load_state_dict(state["model"])
        self.frozen.load_state_dict(state["frozen"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.steps, self.elapsed = int(state["steps"]), float(state["elapsed"])
        self.log(f"resumed {self.checkpoint}: epoch {self.epoch + 1}, frame {self.position}")
        return True
