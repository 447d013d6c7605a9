"""Several workers on this machine: one process per GPU, or N on the CPU, through joblib.

joblib's loky backend starts fresh Python processes (not forks of this one, which has
imported torch), runs one `_worker_task` in each, and the task pins its GPU by setting
`CUDA_VISIBLE_DEVICES` before anything imports torch (this module imports nothing heavy at
its top, so unpickling the task imports nothing either). Everything downstream (the fork
server and the trials it forks) inherits the pin; CUDA is never touched in this process or
in the workers, only in trial processes.

Each worker runs `vtd.sweep.execute.worker.run_worker` and sends its events (trial started, epoch,
trial ended) to the parent through a manager queue; a manager event carries the parent's stop
(Ctrl-C) to every worker, which then ends its running trial as interrupted. A worker's error
is returned, not raised, so that joblib never cancels the other workers' trials.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.managers import SyncManager
from typing import Any

logger = logging.getLogger(__name__)

_STOP_POLL_S = 0.5
# A loky process runs one worker to its end; idle, it leaves soon (also when this process died).
_IDLE_WORKER_TIMEOUT_S = 10


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process: its GPU (a CUDA_VISIBLE_DEVICES value) and its trials' threads."""

    index: int
    gpu: str | None = None
    torch_threads: int | None = None

    @property
    def label(self) -> str:
        return f"worker {self.index}" + (f" (GPU {self.gpu})" if self.gpu is not None else "")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_specs(workers: int | None, gpus: Sequence[str] | None) -> list[WorkerSpec]:
    """`workers` processes (default: one per GPU, else one), GPUs dealt round-robin; on the
    CPU each trial gets cores // workers torch threads so that workers do not oversubscribe."""
    gpus = list(gpus or ())
    count = workers if workers is not None else max(1, len(gpus))
    if count < 1:
        raise ValueError("--workers must be at least 1")
    if gpus and count < len(gpus):
        raise ValueError(f"{count} worker(s) for {len(gpus)} GPUs: give at least one per GPU")
    if gpus:
        return [WorkerSpec(index, gpus[index % len(gpus)]) for index in range(count)]
    threads = max(1, available_cores() // count) if count > 1 else None
    return [WorkerSpec(index, None, threads) for index in range(count)]


def _exit_with_parent(parent_pid: int) -> None:
    """In the manager's process: end it when the parent is gone (even killed with SIGKILL),
    which in turn stops the workers."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _watch_parent_stop(shared_stop: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            if shared_stop.wait(_STOP_POLL_S):
                break
        except (OSError, EOFError):  # the parent (and its manager) is gone
            break
    stop.set()


def _worker_task(
    spec: WorkerSpec,
    sweep_path: str,
    storage: str,
    tracking_uri: str,
    parent_run_id: str | None,
    events: Any,
    shared_stop: Any,
) -> str | None:
    """One worker, in a fresh loky process; returns None, or what stopped it."""
    if spec.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = spec.gpu  # before torch is imported (below)
    # loky made "loky" this process's start method; trial processes, forked from the fork
    # server, would be told to use it and fail to find it: back to Python's default.
    multiprocessing.set_start_method(None, force=True)
    import signal

    from vtd.sweep.execute.events import Notice
    from vtd.sweep.execute.worker import run_worker
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.console import configure_logging

    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda _signum, _frame: stop.set())
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    configure_logging(verbose=False)
    threading.Thread(
        target=_watch_parent_stop, args=(shared_stop, stop), name="parent-stop", daemon=True
    ).start()
    try:
        run_worker(
            load_sweep(sweep_path, storage=storage, tracking_uri=tracking_uri),
            parent_run_id=parent_run_id,
            events=events.put,
            stop=stop,
            torch_threads=spec.torch_threads,
        )
    except Exception as error:  # noqa: BLE001 - reported to the parent, which goes on
        logger.exception("%s stopped", spec.label)
        message = f"{spec.label} (process {os.getpid()}) stopped: {type(error).__name__}: {error}"
        events.put(Notice(message))
        return message
    finally:
        stop.set()
        for number, handler in previous.items():  # the loky process outlives this task
            signal.signal(number, handler)
    return None


def run_local_workers(
    specs: Sequence[WorkerSpec],
    *,
    sweep_path: str,
    storage: str,
    tracking_uri: str,
    parent_run_id: str | None,
    events: Callable[[Any], None],
    stop: threading.Event,
) -> list[str]:
    """Run the workers of `specs` to the end; their events go to `events`. Returns the
    errors of workers that stopped on one. If this process dies, the manager process follows
    it and the workers, cut off from it, stop (their trials marked interrupted)."""
    from joblib import Parallel, delayed, parallel_config

    context = multiprocessing.get_context("spawn")
    results: list[str | None] = []
    manager = SyncManager(ctx=context)
    manager.start(_exit_with_parent, (os.getpid(),))
    with manager:
        channel = manager.Queue()
        shared_stop = manager.Event()

        def run_all() -> None:
            tasks = (
                delayed(_worker_task)(
                    spec, sweep_path, storage, tracking_uri, parent_run_id, channel, shared_stop
                )
                for spec in specs
            )
            try:
                with parallel_config(backend="loky", idle_worker_timeout=_IDLE_WORKER_TIMEOUT_S):
                    # joblib runs a single job in this process: ask for two processes at least.
                    parallel = Parallel(n_jobs=max(2, len(specs)), batch_size=1, pre_dispatch="all")
                    results.extend(parallel(tasks))
            except Exception as error:  # noqa: BLE001 - a worker process died: say so
                results.append(f"worker processes: {type(error).__name__}: {error}")

        runner = threading.Thread(target=run_all, name="joblib-workers", daemon=True)
        runner.start()
        try:
            while runner.is_alive() or not channel.empty():
                if stop.is_set():
                    shared_stop.set()
                try:
                    events(channel.get(timeout=0.2))
                except queue.Empty:
                    continue
        except BaseException:
            shared_stop.set()  # a second Ctrl-C: every worker ends its trial now
            runner.join(timeout=30)
            raise
    return [error for error in results if error]
