"""`vtd-sweep run`: prepare the study once, then run workers, under one MLflow parent run.

Preparation happens in this process before any worker starts, so that workers never race
to create a database, a study, an experiment, the demo data or the demo's pretrained
weights: (1) with `force_new`, the old study is deleted, its folder and experiment set
aside; (2) the demo data is generated (cached); (3) the study is created or resumed and
checked against the file; (4) the trials to run are queued; (5) the MLflow experiment is
made; (6) the demo's pretrained checkpoint is made if a trial needs it (cached).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import platform
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from optuna.trial import TrialState

from vtd.data.demo import ensure_demo
from vtd.sweep.child import TrainingRequest
from vtd.sweep.config import Sweep, load_sweep
from vtd.sweep.runner import TrialLauncher
from vtd.sweep.study import (
    QueuedTrial,
    delete_study,
    enqueue,
    open_sweep_study,
    plan_queue,
    study_exists,
)
from vtd.sweep.tracking import Tracker
from vtd.sweep.worker import Event, EventSink, TrialEnded, run_worker

logger = logging.getLogger(__name__)

OPTIMISTIC_NOTE = "selected on the test split: optimistic"


class PreparationError(RuntimeError):
    """Something the sweep needs before its trials could not be made."""


@dataclass(frozen=True)
class Notice:
    """A line for the user about preparation (not about a trial)."""

    message: str


@dataclass(frozen=True)
class Plan:
    """What a run would do: trials queued now, already waiting, and still to sample."""

    queued: list[QueuedTrial]
    waiting: int
    to_sample: int
    finished: int

    @property
    def total(self) -> int:
        return len(self.queued) + self.waiting + self.to_sample


@dataclass
class SweepOutcome:
    plan: Plan
    ended: list[TrialEnded] = field(default_factory=list)
    interrupted: bool = False
    parent_run_id: str | None = None
    worker_errors: list[str] = field(default_factory=list)


def plan(sweep: Sweep) -> Plan:
    """The plan for the study as it stands, writing nothing (for `--dry-run`)."""
    trials = []
    if study_exists(sweep):
        trials = open_sweep_study(sweep, create=False).study.get_trials(deepcopy=False)
    return _plan_for(sweep, trials)


def _plan_for(sweep: Sweep, trials: list) -> Plan:
    to_sample = 0
    if sweep.file.sampler.name != "grid":
        sampled = sum(1 for trial in trials if trial.user_attrs.get("origin") == "sampled")
        to_sample = max(0, (sweep.file.n_trials or 0) - sampled) * sweep.file.repeats
    return Plan(
        queued=plan_queue(sweep, trials),
        waiting=sum(1 for trial in trials if trial.state == TrialState.WAITING),
        to_sample=to_sample,
        finished=sum(1 for trial in trials if trial.state.is_finished()),
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_demo_pretrained(
    sweep: Sweep, launcher: TrialLauncher, stop: threading.Event | None = None
) -> Path:
    """The demo's pretrained checkpoint, trained once (in a trial process) and cached."""
    weights = sweep.weights
    target = weights.demo_checkpoint
    with _file_lock(target.with_suffix(".lock")):
        if target.is_file():
            return target
        config = weights.pretrain_config()
        log_path = config.output_dir / "train.log"
        outcome = launcher.run(
            TrainingRequest(config=config, log_path=log_path), lambda _record: False, stop=stop
        )
        last = (outcome.result or {}).get("last_checkpoint")
        if outcome.status != "completed" or not last:
            raise PreparationError(
                f"making the demo's pretrained weights ended as {outcome.status}; see {log_path}"
            )
        return weights.install_demo_checkpoint(Path(last))


def _set_aside(folder: Path) -> Path | None:
    if not folder.exists():
        return None
    target = folder.with_name(f"{folder.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(target)
    return target


def prepare(
    sweep: Sweep,
    *,
    force_new: bool = False,
    launcher: TrialLauncher | None = None,
    events: EventSink | None = None,
    stop: threading.Event | None = None,
) -> Plan:
    """Everything before the workers start (see the module docstring); returns the plan."""
    say = events or (lambda _event: None)
    tracker = Tracker(sweep)
    if force_new:
        if delete_study(sweep):
            say(Notice(f"deleted study {sweep.study_name}"))
        moved = _set_aside(sweep.study_dir)
        if moved is not None:
            say(Notice(f"moved the old study folder to {moved}"))
        renamed = tracker.set_aside_experiment()
        if renamed is not None:
            say(Notice(f"renamed the old MLflow experiment to {renamed}"))
    if sweep.file.demo is not None:
        ensure_demo(sweep.cache_dir, sweep.file.demo)
    sweep_study = open_sweep_study(sweep, create=True)
    study_plan = _plan_for(sweep, sweep_study.study.get_trials(deepcopy=False))
    enqueue(sweep_study, study_plan.queued)
    sweep_study.storage.remove_session()
    tracker.experiment_id  # noqa: B018 - creates the experiment (and the database) now
    if sweep.uses_demo_pretrained() and not sweep.weights.demo_checkpoint.is_file():
        say(Notice("making the demo's pretrained weights (once; cached in .cache/weights)"))
        ensure_demo_pretrained(sweep, launcher or TrialLauncher(), stop)
    return study_plan


def _worker_process(
    sweep_path: str,
    parent_run_id: str | None,
    events: multiprocessing.Queue,
    torch_threads: int | None,
) -> None:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    from vtd.sweep.console import configure_logging

    configure_logging(verbose=False)
    try:
        run_worker(
            load_sweep(sweep_path),
            parent_run_id=parent_run_id,
            events=events.put,
            stop=stop,
            torch_threads=torch_threads,
        )
    except Exception as error:
        events.put(Notice(f"worker {os.getpid()} stopped: {type(error).__name__}: {error}"))
        raise


def _run_workers(
    sweep: Sweep,
    count: int,
    *,
    parent_run_id: str | None,
    events: EventSink,
    stop: threading.Event,
    torch_threads: int | None,
) -> list[str]:
    """`count` worker processes on this machine; their events are passed on to `events`."""
    context = multiprocessing.get_context("spawn")
    channel: multiprocessing.Queue = context.Queue()
    processes = [
        context.Process(
            target=_worker_process,
            args=(str(sweep.path), parent_run_id, channel, torch_threads),
            name=f"vtd-worker-{index}",
        )
        for index in range(count)
    ]
    for process in processes:
        process.start()
    forwarded = False
    while any(process.is_alive() for process in processes) or not channel.empty():
        if stop.is_set() and not forwarded:
            for process in processes:
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, signal.SIGINT)
            forwarded = True
        try:
            events(channel.get(timeout=0.2))
        except queue.Empty:
            continue
    return [
        f"{process.name} exited with code {process.exitcode}"
        for process in processes
        if process.exitcode not in (0, None)
    ]


def run_sweep(
    sweep: Sweep,
    *,
    workers: int = 1,
    force_new: bool = False,
    events: EventSink | None = None,
    stop: threading.Event | None = None,
    torch_threads: int | None = None,
    prepared: Plan | None = None,
) -> SweepOutcome:
    """Prepare the study and run `workers` workers to the end, under one MLflow parent run."""
    stop = stop or threading.Event()
    recorded: list[TrialEnded] = []

    def sink(event: Event | Notice) -> None:
        if isinstance(event, TrialEnded):
            recorded.append(event)
        if events is not None:
            events(event)

    launcher = TrialLauncher()
    if workers == 1:
        launcher.warm_up()  # imports torch in the fork server while the study is prepared
    study_plan = prepared or prepare(
        sweep, force_new=force_new, launcher=launcher, events=sink, stop=stop
    )
    tracker = Tracker(sweep)
    objective = sweep.file.objective
    tags = {
        "vtd.command": "run",
        "sweep_file": sweep.path.name,
        "sampler": sweep.file.sampler.name,
        "workers": workers,
        "host": platform.node(),
        "objective": f"{objective.reduce} {objective.split} {objective.metric}",
    }
    if objective.optimistic:
        tags["selection"] = OPTIMISTIC_NOTE
    parent_run_id = tracker.start_sweep_run(tags)
    outcome = SweepOutcome(plan=study_plan, parent_run_id=parent_run_id)
    status = "FAILED"
    try:
        if workers == 1:
            run_worker(
                sweep,
                parent_run_id=parent_run_id,
                events=sink,
                stop=stop,
                torch_threads=torch_threads,
                launcher=launcher,
            )
        else:
            outcome.worker_errors = _run_workers(
                sweep,
                workers,
                parent_run_id=parent_run_id,
                events=sink,
                stop=stop,
                torch_threads=torch_threads,
            )
        outcome.interrupted = stop.is_set()
        status = "KILLED" if outcome.interrupted else "FINISHED"
    finally:
        outcome.ended = recorded
        counts = {
            state: sum(1 for ended in recorded if ended.state == state)
            for state in ("COMPLETE", "PRUNED", "FAIL")
        }
        tracker.end_sweep_run(
            parent_run_id, status, {f"trials_{state.lower()}": n for state, n in counts.items()}
        )
    return outcome
