"""glibc's allocator tuned for frame-sized arrays: freed frames reused from the heap, not mapped afresh.

A 720p float32 matte is 3.7 MB, and every stage of a frame makes a few such arrays. glibc serves
blocks above its mmap threshold (128 KB at start) with fresh pages from the kernel, and each fresh
page costs a fault when first written: on the project's 2-core VM the guided-filter enlargement of a
352x608 matte to 720p took 14 ms that way against 5.8 ms with the threshold raised, and a whole
720p frame's work outside the network 155 against 144 ms of CPU (docs/performance.md). With the
threshold raised, a freed frame stays in the heap and the next frame's array takes its place.
"""

from __future__ import annotations

import ctypes
import sys

#: ``mallopt`` parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to glibc's largest mmap threshold on 64-bit (a 1080p float32 RGB frame is 25 MB) come from the heap.
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the heap's top is returned to the system only past this much (a few frames' worth).
TRIM_THRESHOLD = 128 * 1024 * 1024


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where there is no glibc (macOS,
    Windows, musl), which changes nothing. The command line calls it; a library user may."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
