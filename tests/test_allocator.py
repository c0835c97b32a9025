"""The allocator tuning the command line applies: frame-sized arrays stop costing fresh pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

_PROBE = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from modnet_matting.allocator import tune_allocator
    assert tune_allocator()
from modnet_matting.inference.refine import guided_upsample
rgb = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
matte = np.random.default_rng(1).random((352, 608)).astype(np.float32)
for _ in range(3):
    guided_upsample(matte, rgb)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # a 720p frame's enlargement: arrays of several sizes made and freed
    guided_upsample(matte, rgb)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux only")
def test_a_freed_frame_is_reused_instead_of_faulted_in_again() -> None:
    default, tuned = _page_faults("default"), _page_faults("tuned")
    assert default > 20 * 500, default  # glibc's default maps and faults in fresh pages every frame
    assert tuned < 20 * 50, tuned
