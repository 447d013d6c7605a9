"""What runs inside a trial process: `vtd.train.finetune`, epoch by epoch, over a pipe.

The process is forked from a fork server that has already imported torch, torchvision,
`vtd.train` and this module, so starting it costs no imports; it is the first and only
process of the trial to touch CUDA, so a poisoned CUDA context dies with it. Protocol:

- child -> parent, first: ("device", what it runs on: GPU name and total, host total);
- child -> parent: ("epoch", EpochRecord as a dict), then waits for the answer;
- parent -> child: "continue" or "stop" (pruned: training ends after this epoch);
- child -> parent, once at the end: ("done", result) or ("error", description).

stdout, stderr and logging go to the trial's log file. Ctrl-C is the parent's business: the
trial ignores SIGINT and is ended by the parent. A trial never outlives its worker: its parent
is the fork server, not the worker, so a thread watches the worker's process (a pidfd on
Linux) and kills the trial and its loader processes the moment the worker is gone (a worker
killed with SIGKILL cannot end them itself).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vtd.sweep.plan.faults import IN_TRAINING, FaultConfig, inject, poison_loss
from vtd.train.config import TrainConfig

if TYPE_CHECKING:
    from vtd.train import EpochRecord

logger = logging.getLogger(__name__)

CONTINUE = "continue"
STOP = "stop"
# Messages of the CUDA, cuDNN and cuBLAS allocators, and of the CPU allocator.
_DEVICE_OOM_MARKS = (
    "CUDA out of memory",
    "CUDA error: out of memory",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "HIP out of memory",
)
_HOST_OOM_MARKS = ("can't allocate memory", "Cannot allocate memory", "DefaultCPUAllocator")


@dataclass(frozen=True)
class TrainingRequest:
    """Everything a trial process needs (pickled to it)."""

    config: TrainConfig
    log_path: Path
    faults: tuple[FaultConfig, ...] = ()
    memory_cap_mb: int | None = None
    torch_threads: int | None = None
    worker_pid: int | None = None  # the trial ends when this process is gone
    # The GPU pin (the worker's, or a probe's), applied before CUDA starts (the fork server
    # may be older than it).
    cuda_visible_devices: str | None = None
    # Not a training: one step of `vtd.sweep.execute.probe_step` ("train" or "evaluate").
    probe: Literal["train", "evaluate"] | None = None


def _peak_rss_mb() -> float:
    # The process's own peak: a trial that fails within the watchdog's first sampling
    # interval would otherwise report no memory figure at all.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify_error(error: BaseException) -> str:
    """`cuda_oom`, `host_oom` or `error` for an exception raised by training."""
    for link in _chain(error):
        names = {cls.__name__ for cls in type(link).__mro__ if cls.__module__.startswith("torch")}
        if "OutOfMemoryError" in names:
            return "cuda_oom"
        if isinstance(link, MemoryError):
            return "host_oom"
        message = str(link)
        if any(mark in message for mark in _DEVICE_OOM_MARKS):
            return "cuda_oom"
        if any(mark in message for mark in _HOST_OOM_MARKS):
            return "host_oom"
    return "error"


_UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
_UNITS.update({"KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "bytes": 1})
# torch's allocators: "Tried to allocate 2.00 GiB" (CUDA), "allocate 68719476736 bytes" (CPU).
_REQUESTED = re.compile(r"allocate ([\d.]+) ?(bytes|[KMGT]i?B|B)\b")


def requested_bytes(message: str) -> int | None:
    """The allocation an allocator's out-of-memory message says was asked for."""
    match = _REQUESTED.search(message)
    return None if match is None else int(float(match.group(1)) * _UNITS[match.group(2)])


def describe_error(error: BaseException) -> dict[str, Any]:
    description: dict[str, Any] = {
        "kind": classify_error(error),
        "type": type(error).__name__,
        "message": str(error),
        "traceback": "".join(traceback.format_exception(error)),
        "requested_bytes": requested_bytes(str(error)),
    }
    try:
        import torch

        if torch.cuda.is_initialized():
            description["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
            description["device_total_mb"] = (
                torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / 2**20
            )
    except Exception:  # noqa: BLE001 - a broken CUDA context must not hide the error itself
        logger.debug("no device memory figures", exc_info=True)
    return description


def _log_to(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _end_with_worker(worker_pid: int) -> None:
    """Wait for the worker process to end; then kill this trial and its children at once."""
    try:
        handle = os.pidfd_open(worker_pid)
    except ProcessLookupError:
        handle = None  # already gone
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll instead
        while _alive(worker_pid):
            time.sleep(1.0)
        handle = None
    if handle is not None:
        select.select([handle], [], [])
        os.close(handle)
    logger.error("the worker (process %d) is gone: ending this trial", worker_pid)
    import psutil

    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.kill()
    os.kill(os.getpid(), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ended(pid: int) -> bool:
    """Whether process `pid` has ended, a zombie not yet reaped by its parent included."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _watch_worker(worker_pid: int | None) -> None:
    if worker_pid is not None:
        threading.Thread(
            target=_end_with_worker, args=(worker_pid,), name="worker-watch", daemon=True
        ).start()


def _faults_at(request: TrainingRequest, epoch: int) -> None:
    for fault in request.faults:
        if fault.epoch == epoch and fault.kind not in IN_TRAINING:
            inject(fault, epoch, request.memory_cap_mb)


def describe_device(device: str) -> dict[str, Any]:
    """What this trial runs on: the GPU's name and total bytes (when it trains on one) and
    the host's total memory; an out-of-memory outcome records it (see vtd.sweep.store.record)."""
    import psutil
    import torch

    description: dict[str, Any] = {"host_total_bytes": psutil.virtual_memory().total}
    if device != "cpu" and torch.cuda.is_available():
        index = torch.device(device).index if device.startswith("cuda:") else 0
        properties = torch.cuda.get_device_properties(index or 0)
        description["gpu_name"] = properties.name
        description["gpu_total_bytes"] = int(properties.total_memory)
    return description


def training_main(request: TrainingRequest, connection: Connection) -> None:
    """The trial process's target: run finetune, report every epoch, report the end."""
    # Already imported by the fork server (see vtd.sweep.execute.runner.PRELOAD): free here.
    from vtd.train import finetune

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_worker(request.worker_pid)
    if request.cuda_visible_devices is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = request.cuda_visible_devices
    _log_to(request.log_path)
    if request.torch_threads:
        import torch

        torch.set_num_threads(request.torch_threads)
    logger.info(
        "trial process %d: training into %s%s",
        os.getpid(),
        request.config.output_dir,
        f" (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})"
        if "CUDA_VISIBLE_DEVICES" in os.environ
        else "",
    )

    loss_epoch_ended = poison_loss(request.faults)

    def on_epoch(record: EpochRecord) -> bool:
        if loss_epoch_ended is not None:
            loss_epoch_ended(record.epoch)
        if record.epoch > 0:  # faults "at epoch 0" fired before training, below
            _faults_at(request, record.epoch)
        connection.send(("epoch", record.to_dict()))
        return connection.recv() == STOP

    try:
        connection.send(("device", describe_device(request.config.device)))
        _faults_at(request, 0)
        if request.probe is not None:
            from vtd.sweep.execute.probe_step import probe_step

            done = probe_step(request.config, request.probe)
        else:
            started = time.perf_counter()
            result = finetune(request.config, on_epoch)
            done = {
                "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
                "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
                "train_seconds": time.perf_counter() - started,
            }
    except BaseException as error:  # noqa: BLE001 - every failure is reported to the parent
        worker = request.worker_pid
        if isinstance(error, OSError | EOFError) and worker is not None and _ended(worker):
            # the pipe broke because the worker died: the watcher's words, whichever comes first
            logger.error("the worker (process %d) is gone: ending this trial", worker)
            return
        logger.error("training failed:\n%s", "".join(traceback.format_exception(error)))
        try:
            connection.send(("error", {**describe_error(error), "peak_rss_mb": _peak_rss_mb()}))
        except OSError:
            logger.error("the worker is gone; nobody to tell")
        return
    connection.send(("done", {**done, "peak_rss_mb": _peak_rss_mb()}))
    logger.info("trial process %d: done", os.getpid())
