"""`vtd-sweep run`: prepare the study once, then run workers, under one MLflow parent run.

Preparation happens before any worker of this run starts, under a lock on the study
(`vtd.sweep.store.storage.storage_lock`: a file lock beside a SQLite database, an advisory lock on
PostgreSQL), so that no two processes, on one machine or many, race to create a database, a
study, an experiment or the queue: (1) with `force_new`, the old study is deleted, its folder
and experiment set aside; (2) the study is created or resumed and checked against the file;
(3) trials of dead workers are failed and queued again (`vtd.sweep.store.heartbeat`); (4) the trials
to run are queued; (5) the MLflow experiment is made. Then, per machine and cached: the demo
data and the demo's pretrained checkpoint if a trial needs it.

`join_study` is what `vtd-sweep worker` does first: the same preparation under the same lock
when the study does not exist yet (the first of many workers makes it, the others wait and
join it), else only this machine's part.

Before any of that, and before `plan` (`--dry-run`), `check_data` indexes every split of
every data variant on this machine: a data error is a `PreparationError` naming the file and
line, raised before anything is written to Optuna or MLflow.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import TrialState

from vtd.data.errors import DataError
from vtd.demo.generate import ensure_demo
from vtd.sweep.execute.child import TrainingRequest
from vtd.sweep.execute.events import Event, EventSink, Notice, Plan, TrialEnded, ignore
from vtd.sweep.execute.pool import run_local_workers, worker_specs
from vtd.sweep.execute.runner import TrialLauncher
from vtd.sweep.plan.config import OPTIMISTIC_NOTE, Sweep
from vtd.sweep.plan.datacheck import check_sweep_data
from vtd.sweep.store.heartbeat import recover_lost_trials
from vtd.sweep.store.queue import current_device, enqueue, out_of_memory_to_retry, plan_queue
from vtd.sweep.store.storage import file_lock, storage_lock
from vtd.sweep.store.study import (
    delete_study,
    existing_study,
    open_sweep_study,
    sampled_count,
    study_exists,
)

logger = logging.getLogger(__name__)


class PreparationError(RuntimeError):
    """Something the sweep needs before its trials could not be made."""


@dataclass
class SweepOutcome:
    plan: Plan
    ended: list[TrialEnded] = field(default_factory=list)
    interrupted: bool = False
    parent_run_id: str | None = None
    worker_errors: list[str] = field(default_factory=list)


def check_data(sweep: Sweep, say: EventSink | None = None) -> None:
    """Index and split the sweep's data (every variant) before any study or trial exists.

    Raises `PreparationError` with the `DataError`'s one line (file and line); frames skipped
    under `on_bad_frame: skip` are counted in a notice."""
    try:
        checked = check_sweep_data(sweep)
    except DataError as error:
        raise PreparationError(f"data: {error}") from None
    skipped = {id(item.index): len(item.index.skipped) for item in checked}
    if sum(skipped.values()) and say is not None:
        say(
            Notice(
                f"data: {sum(skipped.values())} bad frame(s) skipped (on_bad_frame: skip); "
                f"`vtd-sweep data {sweep.path}` says which and why"
            )
        )


def plan(sweep: Sweep, *, retry_out_of_memory: bool = False) -> Plan:
    """The plan for the study as it stands, writing nothing (for `--dry-run`)."""
    check_data(sweep)
    trials = []
    sweep_study = existing_study(sweep)
    if sweep_study is not None:
        trials = sweep_study.study.get_trials(deepcopy=False)
    return _plan_for(sweep, trials, retry_out_of_memory=retry_out_of_memory)


def _plan_for(sweep: Sweep, trials: list, *, retry_out_of_memory: bool = False) -> Plan:
    to_sample = 0
    if sweep.file.sampler.name != "grid":
        to_sample = max(0, (sweep.file.n_trials or 0) - sampled_count(trials)) * sweep.file.repeats
    device = current_device(sweep)
    again = out_of_memory_to_retry(trials, device, retry=retry_out_of_memory)
    return Plan(
        queued=plan_queue(sweep, trials, device=device, retry_out_of_memory=retry_out_of_memory),
        waiting=sum(1 for trial in trials if trial.state == TrialState.WAITING),
        to_sample=to_sample,
        finished=sum(1 for trial in trials if trial.state.is_finished()),
        out_of_memory_again=tuple(trial.number for trial in again),
    )


def ensure_demo_pretrained(
    sweep: Sweep, launcher: TrialLauncher, stop: threading.Event | None = None
) -> Path:
    """The demo's pretrained checkpoint, trained once (in a trial process) and cached."""
    weights = sweep.weights
    target = weights.demo_checkpoint
    with file_lock(target.with_suffix(".lock")):
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


def _study_lock(sweep: Sweep) -> contextlib.AbstractContextManager[None]:
    return storage_lock(sweep.storage_url, f"vtd-sweep study {sweep.study_name}")


def _prepare_study(
    sweep: Sweep, *, force_new: bool, say: EventSink, retry_out_of_memory: bool = False
) -> Plan:
    """Create or resume the study, recover lost trials, queue; the caller holds the lock."""
    from vtd.sweep.store.tracking import Tracker

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
    sweep_study = open_sweep_study(sweep, create=True)
    lost = recover_lost_trials(sweep_study, tracker)
    if lost:
        numbers = ", ".join(str(number) for number in lost)
        say(Notice(f"trial(s) {numbers}: their worker died; failed and queued again"))
    study_plan = _plan_for(
        sweep,
        sweep_study.study.get_trials(deepcopy=False),
        retry_out_of_memory=retry_out_of_memory,
    )
    if study_plan.out_of_memory_again:
        numbers = ", ".join(str(number) for number in study_plan.out_of_memory_again)
        why = "asked for" if retry_out_of_memory else "other hardware or a larger memory cap"
        say(Notice(f"trial(s) {numbers}: out of memory before ({why}): queued again"))
    enqueue(sweep_study, study_plan.queued)
    sweep_study.storage.remove_session()
    tracker.ensure_experiment()  # creates the experiment (and the database) now
    return study_plan


def _prepare_machine(
    sweep: Sweep, launcher: TrialLauncher | None, say: EventSink, stop: threading.Event | None
) -> None:
    """What trials need on this machine: the demo data and weights (cached, file-locked)."""
    if sweep.file.demo is not None:
        ensure_demo(sweep.cache_dir, sweep.file.demo)
    if sweep.uses_demo_pretrained() and not sweep.weights.demo_checkpoint.is_file():
        say(Notice("making the demo's pretrained weights (once; cached in .cache/weights)"))
        ensure_demo_pretrained(sweep, launcher or TrialLauncher(), stop)


def prepare(
    sweep: Sweep,
    *,
    force_new: bool = False,
    launcher: TrialLauncher | None = None,
    events: EventSink | None = None,
    stop: threading.Event | None = None,
    retry_out_of_memory: bool = False,
) -> Plan:
    """Everything before the workers start (see the module docstring); returns the plan."""
    from vtd.sweep.store.sync import sync_or_say

    say = events or ignore
    check_data(sweep, say)  # before anything is written, to Optuna or MLflow
    sync_or_say(sweep, lambda text: say(Notice(text)))
    with _study_lock(sweep):
        study_plan = _prepare_study(
            sweep, force_new=force_new, say=say, retry_out_of_memory=retry_out_of_memory
        )
    _prepare_machine(sweep, launcher, say, stop)
    return study_plan


def join_study(
    sweep: Sweep,
    *,
    launcher: TrialLauncher | None = None,
    events: EventSink | None = None,
    stop: threading.Event | None = None,
) -> Plan | None:
    """Before a worker's first claim: prepare the study if nobody has (returns its plan),
    and this machine's demo data and weights."""
    say = events or ignore
    check_data(sweep, say)
    study_plan = None
    with _study_lock(sweep):
        if not study_exists(sweep):
            say(Notice(f"study {sweep.study_name} does not exist yet: creating it"))
            study_plan = _prepare_study(sweep, force_new=False, say=say)
    _prepare_machine(sweep, launcher, say, stop)
    return study_plan


def run_sweep(
    sweep: Sweep,
    *,
    workers: int | None = None,
    gpus: Sequence[str] | None = None,
    events: EventSink | None = None,
    stop: threading.Event | None = None,
) -> SweepOutcome:
    """Prepare the study and run `workers` workers to the end, under one MLflow parent run
    (`prepare`, then `run_prepared`)."""
    specs = worker_specs(workers, gpus)
    launcher = TrialLauncher()
    if len(specs) == 1 and specs[0].gpu is None:
        launcher.warm_up()  # imports torch in the fork server while the study is prepared
    study_plan = prepare(sweep, launcher=launcher, events=events, stop=stop)
    return run_prepared(
        sweep, study_plan, workers=workers, gpus=gpus, events=events, stop=stop, launcher=launcher
    )


def run_prepared(
    sweep: Sweep,
    study_plan: Plan,
    *,
    workers: int | None = None,
    gpus: Sequence[str] | None = None,
    events: EventSink | None = None,
    stop: threading.Event | None = None,
    launcher: TrialLauncher | None = None,
) -> SweepOutcome:
    """Run `workers` workers to the end on the study `prepare` made (`study_plan`, its plan),
    under one MLflow parent run.

    One worker on the CPU runs in this process; more, or any on GPUs, run in fresh processes
    (`vtd.sweep.execute.pool`: by default one per GPU of `gpus`, each pinned to it)."""
    from vtd.sweep.execute.worker import run_worker
    from vtd.sweep.store.tracking import Tracker

    specs = worker_specs(workers, gpus)
    local = len(specs) == 1 and specs[0].gpu is None
    stop = stop or threading.Event()
    recorded: list[TrialEnded] = []

    def sink(event: Event | Notice) -> None:
        if isinstance(event, TrialEnded):
            recorded.append(event)
        if events is not None:
            events(event)

    launcher = launcher or TrialLauncher()
    if local:
        launcher.warm_up()  # returns at once if the fork server runs already
    tracker = Tracker(sweep)
    objective = sweep.file.objective
    tags = {
        "vtd.command": "run",
        "sweep_file": sweep.path.name,
        "sampler": sweep.file.sampler.name,
        "workers": len(specs),
        "gpus": ",".join(gpus or ()) or "none",
        "host": platform.node(),
        "objective": f"{objective.reduce} {objective.split} {objective.metric}",
    }
    if objective.optimistic:
        tags["selection"] = OPTIMISTIC_NOTE
    parent_run_id = tracker.start_sweep_run(tags)
    outcome = SweepOutcome(plan=study_plan, parent_run_id=parent_run_id)
    status = "FAILED"
    try:
        if local:
            run_worker(
                sweep,
                parent_run_id=parent_run_id,
                events=sink,
                stop=stop,
                launcher=launcher,
            )
        else:
            outcome.worker_errors = run_local_workers(
                specs,
                sweep_path=str(sweep.path),
                storage=sweep.storage_url,
                tracking_uri=sweep.tracking_uri,
                parent_run_id=parent_run_id,
                events=sink,
                stop=stop,
            )
        outcome.interrupted = stop.is_set()
        status = "KILLED" if outcome.interrupted else "FINISHED"
    finally:
        outcome.ended = recorded
        counts = {
            state: sum(1 for ended in recorded if ended.state == state)
            for state in ("COMPLETE", "PRUNED", "FAIL")
        }
        try:
            tracker.end_sweep_run(
                parent_run_id, status, {f"trials_{state.lower()}": n for state, n in counts.items()}
            )
        except Exception as error:  # noqa: BLE001 - the trials are in Optuna; sync catches up
            logger.warning("MLflow: the sweep's run could not be ended: %s", error)
    return outcome
