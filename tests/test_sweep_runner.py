"""Trial-process pieces that need no training: error classes, the memory watchdog, fault rules."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from vtd.sweep.execute.child import classify_error, describe_error
from vtd.sweep.execute.runner import MemoryWatchdog
from vtd.sweep.plan.faults import FaultConfig, InjectedFault


def _raised(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:  # noqa: BLE001 - we want the raised object with its traceback
        return caught


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "cuda_oom"),
        (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), "cuda_oom"),
        (
            RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"),
            "cuda_oom",
        ),
        (RuntimeError("CUDA error: out of memory"), "cuda_oom"),
        (
            RuntimeError(
                "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"
            ),
            "host_oom",
        ),
        (MemoryError(), "host_oom"),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), "error"),
        (InjectedFault("injected"), "error"),
        (ValueError("out of range"), "error"),
    ],
)
def test_errors_are_classified(error: BaseException, kind: str) -> None:
    assert classify_error(_raised(error)) == kind


def test_an_out_of_memory_error_inside_another_is_found() -> None:
    # e.g. a data loader worker's MemoryError re-raised as a RuntimeError by the main process
    try:
        try:
            raise MemoryError
        except MemoryError as inner:
            raise RuntimeError("Caught MemoryError in DataLoader worker process 0") from inner
    except RuntimeError as outer:
        described = describe_error(outer)
    assert described["kind"] == "host_oom"
    assert described["type"] == "RuntimeError"
    assert "MemoryError" in described["traceback"]


def test_the_watchdog_kills_a_process_over_its_cap() -> None:
    hog = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nheld = []\n"
            "for _ in range(40):\n"
            "    held.append(bytearray(b'x') * (16 << 20)); time.sleep(0.02)\n"
            "time.sleep(60)",
        ]
    )
    watchdog = MemoryWatchdog(hog.pid, cap_mb=200, interval_s=0.05)
    watchdog.start()
    try:
        assert hog.wait(timeout=30) == -9  # SIGKILL
    finally:
        watchdog.stop()
        if hog.poll() is None:
            hog.kill()
    assert watchdog.tripped_mb is not None and watchdog.tripped_mb > 200
    assert watchdog.peak_mb >= watchdog.tripped_mb


def test_the_watchdog_leaves_a_process_under_its_cap_alone() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    watchdog = MemoryWatchdog(sleeper.pid, cap_mb=2000, interval_s=0.05)
    watchdog.start()
    started = time.monotonic()
    assert sleeper.wait(timeout=30) == 0
    watchdog.stop()
    assert watchdog.tripped_mb is None
    assert 0 < watchdog.peak_mb < 2000
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize(
    ("when", "settings", "expected"),
    [
        ({}, {"batch_size": 2}, True),
        ({"batch_size": ">= 8"}, {"batch_size": 8}, True),
        ({"batch_size": ">= 8"}, {"batch_size": 4}, False),
        ({"batch_size": "< 8", "chunk_size": 3}, {"batch_size": 4, "chunk_size": 3}, True),
        ({"batch_size": "< 8", "chunk_size": 3}, {"batch_size": 4, "chunk_size": 2}, False),
        ({"initial_weights": "fresh"}, {"initial_weights": "demo-pretrained"}, False),
        ({"initial_weights": "!= fresh"}, {"initial_weights": "demo-pretrained"}, True),
        ({"lr": "> 1e-4"}, {"lr": 2e-4}, True),
        ({"model.lstm_dropout": 0.5}, {"model.lstm_dropout": 0.5}, True),
        ({"batch_size": ">= 8"}, {"batch_size": None}, False),
    ],
)
def test_fault_conditions(when: dict, settings: dict, expected: bool) -> None:
    assert FaultConfig(kind="exception", when=when).matches(settings) is expected
