"""Learning without forgetting: keep what the PASCAL encoder knew about dogs, cats and birds.

The encoder starts from DeepLabV3's PASCAL VOC MobileNetV2, which tells a person from 20
other classes (bird, cat, cow, dog, horse, sheep, bottle, chair, ...). Training on "person
vs rest" erodes that, and the network then keeps a large animal or a bowl of fruit as
person. Here the PASCAL model (a TensorFlow Lite file, run on each training crop in the
data worker) gives its 21-class logits, and a 1x1 head on the encoder's deepest features
learns to reproduce them (Li & Hoiem, "Learning without Forgetting", 2016). The head lives
only in training: exported weights are MODNet's own tensors.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PASCAL_CLASSES = 21
TEACHER_INPUT = 513  # the file's fixed input side (its resize ops do not take another)


class PascalTeacher:
    """The DeepLabV3 PASCAL TensorFlow Lite model, returning its 21-class logits before the upsampling.

    The interpreter is made on first use, so each data-loader process builds its own
    (an interpreter cannot be pickled or shared between processes).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        if not Path(self.path).is_file():
            raise FileNotFoundError(f"lwf_teacher not found: {self.path}")
        self._interpreter: Any = None
        self._input = self._logits = -1
        self._quant = (1.0, 0)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def _load(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with warnings.catch_warnings():  # keeping intermediate tensors is how the logits are read, not debugging
            warnings.simplefilter("ignore", UserWarning)
            interpreter = Interpreter(model_path=self.path, num_threads=1, experimental_preserve_all_tensors=True)
        interpreter.allocate_tensors()
        self._input = interpreter.get_input_details()[0]["index"]
        # the logits: 4-D tensors with 21 channels below the input size are the convolution's output and its
        # resized copies (same shape); the earliest is the convolution's own
        candidates = [d for d in interpreter.get_tensor_details()
                      if len(d["shape"]) == 4 and d["shape"][-1] == PASCAL_CLASSES and d["shape"][1] < TEACHER_INPUT]
        if not candidates:
            raise ValueError(f"{self.path}: no {PASCAL_CLASSES}-class logits; is this the DeepLabV3 PASCAL model?")
        first = min(candidates, key=lambda d: d["index"])
        self._logits = first["index"]
        self._quant = first["quantization"]
        self._interpreter = interpreter

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """``[21, g, g]`` float16 logits of an RGB uint8 image (stretched to the model's square input)."""
        if self._interpreter is None:
            self._load()
        square = cv2.resize(image, (TEACHER_INPUT, TEACHER_INPUT), interpolation=cv2.INTER_LINEAR)
        self._interpreter.set_tensor(self._input, square[None])
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._logits)[0]
        scale, zero = self._quant
        logits = (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)
        return np.ascontiguousarray(logits.transpose(2, 0, 1)).astype(np.float16)


class TeacherSamples(torch.utils.data.Dataset):
    """A sample stream with the teacher's logits of each crop added (key ``teacher``)."""

    def __init__(self, samples: torch.utils.data.Dataset, teacher: PascalTeacher) -> None:
        self.samples, self.teacher = samples, teacher

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        sample = self.samples[position]
        rgb = sample["image"].add(1.0).mul(127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        sample["teacher"] = torch.from_numpy(self.teacher(rgb))
        return sample


class ForgettingHead(nn.Module):
    """A 1x1 convolution from the encoder's 1/32 features to the 21 PASCAL classes."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, PASCAL_CLASSES, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features)

    @torch.no_grad()
    def fit(self, features: torch.Tensor, teacher: torch.Tensor, ridge: float = 1e-2) -> float:
        """Least-squares start: the head that best maps these features to these logits.

        A random head would send noise into the encoder for the first hundreds of steps;
        fitted on a few batches, the distillation term means something from step one.
        ``ridge`` is relative to the features' mean energy, so it means the same at any scale.
        Returns the fitted head's mean squared error on the logits.
        """
        target = pool_to(teacher.float(), features.shape[-2:])
        x = features.float().permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        y = target.permute(0, 2, 3, 1).reshape(-1, PASCAL_CLASSES)
        x = torch.cat([x, torch.ones(len(x), 1)], 1)
        gram = x.T @ x
        gram += ridge * gram.diagonal().mean() * torch.eye(x.shape[1])
        solution = torch.linalg.solve(gram, x.T @ y)
        self.conv.weight.copy_(solution[:-1].T[:, :, None, None])
        self.conv.bias.copy_(solution[-1])
        return float(((x @ solution - y) ** 2).mean())


def pool_to(logits: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The teacher's logits averaged onto the student's grid (its 1/16 grid is finer than our 1/32)."""
    return F.adaptive_avg_pool2d(logits, tuple(size))


def forgetting_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """KL(teacher || student) of the softened class distributions per pixel, scaled by T^2 (Hinton et al.)."""
    target = pool_to(teacher.to(student.dtype), student.shape[-2:])
    log_p = F.log_softmax(student / temperature, dim=1)
    q = F.softmax(target / temperature, dim=1)
    kl = (q * (torch.log(q.clamp_min(1e-8)) - log_p)).sum(1)
    return kl.mean() * temperature**2
