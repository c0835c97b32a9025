"""The output clock of a matted stream: its own module, so the writer and the audio copier both read it
without importing each other."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass
class StreamTiming:
    """How the output clock relates to the input's: its time base, rate and trim window (seconds)."""

    time_base: Fraction
    fps: Fraction | None
    offset: float = 0.0
    end: float | None = None
