"""glibc keeps the memory a training step frees (vtd.host_allocator), unless told not to."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)

# In a fresh process (the setting is process-wide): tune or not, then malloc, fill and free a
# 48 MB block ten times, as a step does with a gradient, and count the page faults. (Straight
# from the C library: numpy would ask for huge pages and hide the faults.)
PROBE = """
import ctypes, json, resource
from vtd.host_allocator import keep_freed_memory
tuned = keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    block = libc.malloc(48 << 20)
    ctypes.memset(block, 1, 48 << 20)
    libc.free(block)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"tuned": tuned, "faults": faults}))
"""


def _probe(**environment: str) -> dict[str, object]:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not (name.startswith("MALLOC_") or name in ("GLIBC_TUNABLES", "VTD_HOST_ALLOCATOR"))
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_freed_blocks_are_reused_without_new_page_faults() -> None:
    tuned = _probe()
    system = _probe(VTD_HOST_ALLOCATOR="system")
    assert tuned["tuned"] is True
    assert system["tuned"] is False
    pages = (48 << 20) // 4096
    # glibc as it comes maps and faults every block afresh; tuned, only the first one
    assert system["faults"] > 8 * pages
    assert tuned["faults"] < 2 * pages


def test_an_allocator_the_user_tuned_is_left_alone() -> None:
    assert _probe(MALLOC_ARENA_MAX="2")["tuned"] is True  # not a tunable ending in "_"
    assert _probe(MALLOC_TRIM_THRESHOLD_="131072")["tuned"] is False
    assert _probe(GLIBC_TUNABLES="glibc.malloc.mmap_threshold=65536")["tuned"] is False
