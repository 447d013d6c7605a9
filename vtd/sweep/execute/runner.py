"""Trial processes seen from the worker: start, converse, watch memory, tell how it ended.

Trial processes come from a multiprocessing fork server whose preload list holds torch,
torchvision and `vtd.train` (`set_forkserver_preload`): the server imports them once, and
each trial is a fork of it, so a trial starts in milliseconds instead of the seconds an
import of torch takes. The worker itself never touches CUDA.

A watchdog thread reads the resident memory of the trial process and its children (data
loader workers) with psutil and kills them all when it passes the per-trial cap. Address-space
limits (RLIMIT_AS) are not used: CUDA and torch reserve far more address space than memory,
and torch's import fails under them.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import psutil

from vtd.sweep.execute.child import CONTINUE, STOP, TrainingRequest, training_main
from vtd.sweep.execute.oom_evidence import EvidenceSources, OomWatch
from vtd.sweep.store.record import MB

logger = logging.getLogger(__name__)

# Imported once by the fork server. "__main__" lets a trial skip re-running the main script.
PRELOAD = ("__main__", "torch", "torchvision", "vtd.train", "vtd.sweep.execute.child")
Status = Literal["completed", "cuda_oom", "host_oom", "memory_cap", "error", "died", "interrupted"]
EpochCallback = Callable[[dict[str, Any]], bool]


@dataclass
class ProcessOutcome:
    """How a trial process ended and what it sent."""

    status: Status
    records: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    exit_code: int | None = None
    peak_rss_mb: float = 0.0
    stopped_by_worker: bool = False
    # The worker (or its memory watchdog) signalled the process itself.
    killed_by_worker: bool = False
    last_rss_mb: float = 0.0
    # Why the kernel's OOM killer is thought to have ended it (SIGKILL only), else None.
    oom_kill_evidence: str | None = None
    memory_limit_mb: float | None = None
    # What the trial process found it runs on (GPU name and total, host total).
    device: dict[str, Any] | None = None

    @property
    def signal_name(self) -> str | None:
        if self.exit_code is None or self.exit_code >= 0:
            return None
        try:
            return signal.Signals(-self.exit_code).name
        except ValueError:
            return f"signal {-self.exit_code}"

    @property
    def out_of_memory(self) -> bool:
        return self.status in ("cuda_oom", "host_oom", "memory_cap")


def _tree_rss(process: psutil.Process) -> int:
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total


def kill_tree(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal a process and all its descendants (children first)."""
    try:
        process = psutil.Process(pid)
        children = process.children(recursive=True)
    except psutil.Error:
        return
    for victim in [*children, process]:
        try:
            victim.send_signal(sig)
        except psutil.Error:
            continue


class MemoryWatchdog(threading.Thread):
    """Polls a process tree's resident memory; kills the tree once it exceeds the cap."""

    def __init__(self, pid: int, cap_mb: int | None, interval_s: float = 0.1) -> None:
        super().__init__(name=f"memory-watchdog-{pid}", daemon=True)
        self.pid = pid
        self.cap_mb = cap_mb
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.last_mb = 0.0
        self.tripped_mb: float | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            process = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            try:
                rss_mb = _tree_rss(process) / MB
            except psutil.Error:
                return
            if rss_mb == 0.0:
                return  # a zombie (killed, not yet reaped) reads as 0: keep the last real sample
            self.peak_mb = max(self.peak_mb, rss_mb)
            self.last_mb = rss_mb
            if self.cap_mb is not None and rss_mb > self.cap_mb:
                self.tripped_mb = rss_mb
                logger.warning(
                    "trial process %d uses %.0f MB, over the %d MB cap: killed",
                    self.pid,
                    rss_mb,
                    self.cap_mb,
                )
                kill_tree(self.pid)
                return
            self._stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join()


class TrialLauncher:
    """Runs training requests in processes forked from a preloaded fork server."""

    def __init__(
        self,
        poll_s: float = 0.05,
        grace_s: float = 5.0,
        evidence: EvidenceSources | None = None,
    ) -> None:
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(PRELOAD))
        self.poll_s = poll_s
        self.grace_s = grace_s
        self.evidence = evidence

    def warm_up(self) -> None:
        """Start the fork server (and its imports) now rather than at the first trial."""
        multiprocessing.forkserver.ensure_running()

    def run(
        self,
        request: TrainingRequest,
        on_epoch: EpochCallback,
        *,
        stop: threading.Event | None = None,
        evidence: EvidenceSources | None = None,
    ) -> ProcessOutcome:
        """Run one training to its end; `on_epoch` answers True to stop after that epoch.
        `evidence`: where to look for a kernel OOM kill (default: the launcher's, else this
        machine's; see vtd.sweep.execute.oom_evidence)."""
        # The trial ends with this process and sees its GPUs, unless the request pins its own
        # (a probe on the first of --gpus; see vtd.sweep.execute.child).
        request = dataclasses.replace(
            request,
            worker_pid=request.worker_pid or os.getpid(),
            cuda_visible_devices=request.cuda_visible_devices
            or os.environ.get("CUDA_VISIBLE_DEVICES"),
        )
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=training_main, args=(request, child_end), name="vtd-trial"
        )
        process.start()
        child_end.close()
        assert process.pid is not None
        sources = evidence or self.evidence or EvidenceSources.of_this_machine()
        oom_watch = OomWatch(sources)
        watchdog = MemoryWatchdog(process.pid, request.memory_cap_mb)
        watchdog.start()
        outcome = ProcessOutcome(status="died")
        urgent = True  # an exception here (a second Ctrl-C, a broken store) ends the trial now
        try:
            self._converse(process, parent_end, on_epoch, outcome, watchdog, stop)
            urgent = outcome.status == "interrupted"
        finally:
            outcome.killed_by_worker = self._end(process, urgent=urgent)
            watchdog.stop()
            parent_end.close()
        outcome.exit_code = process.exitcode
        outcome.killed_by_worker = outcome.killed_by_worker or watchdog.tripped_mb is not None
        outcome.last_rss_mb = watchdog.last_mb
        if sources.memory_limit_bytes:
            outcome.memory_limit_mb = sources.memory_limit_bytes / MB
        if process.exitcode == -signal.SIGKILL and not outcome.killed_by_worker:
            outcome.oom_kill_evidence = oom_watch.evidence(process.pid, watchdog.last_mb * MB)
        reported = (outcome.result or outcome.error or {}).get("peak_rss_mb", 0.0)
        outcome.peak_rss_mb = max(watchdog.peak_mb, reported)
        if watchdog.tripped_mb is not None:
            outcome.status = "memory_cap"
            outcome.peak_rss_mb = max(outcome.peak_rss_mb, watchdog.tripped_mb)
        return outcome

    def _converse(
        self,
        process: multiprocessing.process.BaseProcess,
        connection: multiprocessing.connection.Connection,
        on_epoch: EpochCallback,
        outcome: ProcessOutcome,
        watchdog: MemoryWatchdog,
        stop: threading.Event | None,
    ) -> None:
        while True:
            if stop is not None and stop.is_set():
                outcome.status = "interrupted"
                return
            if watchdog.tripped_mb is not None:
                return
            if not connection.poll(self.poll_s):
                if not process.is_alive() and not connection.poll(0):
                    return
                continue
            try:
                kind, payload = connection.recv()
            except (EOFError, OSError):
                return  # the process died; its exit code says how
            if kind == "device":
                outcome.device = payload
            elif kind == "epoch":
                outcome.records.append(payload)
                halt = on_epoch(payload)
                outcome.stopped_by_worker = outcome.stopped_by_worker or halt
                try:
                    connection.send(STOP if halt else CONTINUE)
                except OSError:
                    return
            elif kind == "done":
                outcome.status = "completed"
                outcome.result = payload
                return
            elif kind == "error":
                outcome.status = payload["kind"] if payload["kind"] != "error" else "error"
                outcome.error = payload
                return

    def _end(self, process: multiprocessing.process.BaseProcess, *, urgent: bool) -> bool:
        """Wait for the process to end, else end it; True when it had to be signalled."""
        process.join(0 if urgent else self.grace_s)
        if not process.is_alive():
            return False
        assert process.pid is not None
        kill_tree(process.pid, signal.SIGTERM)
        process.join(self.grace_s)
        if process.is_alive():
            kill_tree(process.pid, signal.SIGKILL)
            process.join()
        return True
