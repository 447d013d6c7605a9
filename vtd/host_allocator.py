"""glibc's allocator told to keep the memory that training frees, so the next step reuses it.

A training step on the CPU allocates and frees tensors of tens of megabytes (the ConvLSTM's
gradients are 38 MB each). glibc serves any block over its mmap threshold (at most 32 MB by
its own dynamic rule) with a fresh mmap and gives it back on free; the next step's block is
then faulted in again page by page, and the kernel zeroes every page. On the 2-core machine
of `benchmarks/README.md` that was 3 million page faults and 40% of the CPU time of a
full-model epoch, in the kernel. With blocks up to 1 GB kept on the heap, and up to 256 MB of
free heap top kept rather than trimmed, the same epoch ran 1.8x as fast for 0.12 GB more
resident memory (`benchmarks/bench_host_allocator.py`).

Process-wide, like CUDA's memory cap; set once per training or evaluation process. It is
left alone where the user tuned glibc's allocator themselves (``MALLOC_*_`` or
``GLIBC_TUNABLES`` in the environment), where ``VTD_HOST_ALLOCATOR=system`` asks for glibc's
defaults, and where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import logging
import os

logger = logging.getLogger(__name__)

# mallopt's parameter numbers, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 1 << 30
TRIM_THRESHOLD_BYTES = 256 << 20
OPT_OUT_VARIABLE = "VTD_HOST_ALLOCATOR"


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; whether it was done."""
    if os.environ.get(OPT_OUT_VARIABLE, "").strip().lower() == "system":
        return False
    if "GLIBC_TUNABLES" in os.environ or any(
        name.startswith("MALLOC_") and name.endswith("_") for name in os.environ
    ):
        logger.debug("glibc's allocator tuned by the environment: left as it is")
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):
        return False  # no mallopt (macOS), or no C library by that name (Windows)
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 for a value it refuses (musl refuses every one)
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if done:
        logger.debug(
            "glibc's allocator keeps freed blocks up to %d MB, and %d MB of free heap top",
            MMAP_THRESHOLD_BYTES >> 20,
            TRIM_THRESHOLD_BYTES >> 20,
        )
    return done
