"""The Optuna study of a sweep: created once or resumed, its queue, and claiming trials.

Identity: every trial carries user attributes `config_hash`, `cell_hash`, `context_hash`
(see `vtd.sweep.plan.identity`), `cell` (readable), `repeat`, `seed`, `origin`.

Queue (`plan_queue`, run by `vtd-sweep run` before any worker starts):
- grid: every (cell x repeat) whose configuration has no COMPLETE, PRUNED, WAITING or RUNNING
  trial is queued (WAITING, fixed parameters); FAILED and interrupted ones are thus queued
  again, finished ones never. Optuna's GridSampler is not used: it picks cells per worker
  and runs a cell twice when workers finish together.
- tpe / random: configurations sampled so far are completed to `repeats` seeds and failed
  ones queued again; new configurations are sampled by workers while fewer than `n_trials`
  have been sampled.

Claiming (`claim_next`, by workers): a queued trial is taken by setting it RUNNING, which
succeeds for exactly one worker (see `vtd.sweep.store.storage` for SQLite); a grid worker that
finds the queue empty stops instead of asking Optuna for a new trial. A worker records the
trial's first heartbeat before it claims it and names itself on it (user attribute `worker`,
host:pid), so that a worker dying at any moment leaves a trial that goes stale
(`vtd.sweep.store.heartbeat`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import subprocess
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
import psutil
from optuna.trial import FrozenTrial, TrialState

from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.identity import TrialIdentity, canonical_config, identify
from vtd.sweep.plan.space import apply_params
from vtd.sweep.store.record import Device, DuplicateOf, OutOfMemory, read_outcome
from vtd.sweep.store.storage import StorageSettings, open_storage
from vtd.train.config import TrainConfig

logger = logging.getLogger(__name__)

SETTINGS_ATTR = "vtd_sweep"
# The parts of a study that must not change under it; everything else may (repeats, pruner,
# memory cap, faults ...).
FIXED_PARTS = ("sampler", "objective", "search_space", "training")
LIVE_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class StudyError(RuntimeError):
    """A study that cannot be used as asked; the message says how to proceed."""


@dataclass(frozen=True)
class ResolvedTrial:
    """One trial's parameters, seed and the training configuration they resolve to."""

    params: dict[str, Any]
    repeat: int
    seed: int
    config: TrainConfig
    identity: TrialIdentity
    cell: str

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size

    def user_attrs(self) -> dict[str, Any]:
        return {
            "config_hash": self.identity.config_hash,
            "cell_hash": self.identity.cell_hash,
            "context_hash": self.identity.context_hash,
            "cell": self.cell,
            "repeat": self.repeat,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "chunk_size": self.chunk_size,
        }


@dataclass(frozen=True)
class QueuedTrial:
    resolved: ResolvedTrial
    origin: str  # grid | repeat | retry
    retry_of: tuple[int, ...] = ()


@dataclass(frozen=True)
class SweepStudy:
    """An opened study with the storage it lives in."""

    sweep: Sweep
    storage: optuna.storages.RDBStorage
    study: optuna.Study
    study_id: int


@dataclass(frozen=True)
class Claim:
    """A trial a worker now owns (RUNNING), with what it resolves to."""

    trial: optuna.Trial
    resolved: ResolvedTrial
    origin: str
    trial_id: int


def storage_settings(sweep: Sweep) -> StorageSettings:
    heartbeat = sweep.file.heartbeat
    return StorageSettings(
        url=sweep.storage_url,
        heartbeat_interval_s=heartbeat.interval_s,
        grace_period_s=heartbeat.grace_s,
        max_retry=heartbeat.max_retry,
    )


def worker_name() -> str:
    """This worker process, as trials and runs name it: host:pid."""
    return f"{platform.node()}:{os.getpid()}"


def cell_label(params: Mapping[str, Any]) -> str:
    if not params:
        return "base"
    return ", ".join(f"{name}={value}" for name, value in params.items())


def resolve(sweep: Sweep, params: Mapping[str, Any], repeat: int) -> ResolvedTrial:
    """The configuration of `params` at repeat `repeat` (seed = training seed + repeat)."""
    raw = apply_params(sweep.base_raw, params)
    seed = sweep.base.seed + repeat
    raw["seed"] = seed
    config = sweep.weights.validate(raw)
    weights_identity = sweep.weights.identity(raw.get("initial_weights"))
    ordered = {name: params[name] for name in sweep.space.names if name in params}
    return ResolvedTrial(
        params=ordered,
        repeat=repeat,
        seed=seed,
        config=config,
        identity=identify(config, weights_identity, sweep.folder),
        cell=cell_label(ordered),
    )


def study_settings(sweep: Sweep) -> dict[str, Any]:
    """What the study was made with; FIXED_PARTS are compared when it is resumed."""
    objective = sweep.file.objective
    settings = {
        "sampler": sweep.file.sampler.name,
        "objective": {
            "metric": objective.metric,
            "direction": objective.resolved_direction,
            "split": objective.split,
            "reduce": objective.reduce,
        },
        "search_space": sweep.space.to_json(),
        "training": canonical_config(
            sweep.base, sweep.weights.identity(sweep.base_weights), sweep.folder
        ),
        "repeats": sweep.file.repeats,
        "optimistic": objective.optimistic,
    }
    # Stored as JSON: compare in that form (tuples become lists).
    return json.loads(json.dumps(settings, default=str))


def make_sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    config = sweep.file.sampler
    if config.name == "tpe":
        startup = config.n_startup_trials
        extra = {} if startup is None else {"n_startup_trials": startup}
        return optuna.samplers.TPESampler(seed=config.seed, **extra)
    # Grid trials are all queued with fixed parameters: the sampler is never asked for them.
    return optuna.samplers.RandomSampler(seed=config.seed)


def make_pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    config = sweep.file.pruner
    if config.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.n_startup_trials,
            n_warmup_steps=config.n_warmup_steps,
            interval_steps=config.interval_steps,
        )
    if config.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=config.min_resource,
            reduction_factor=config.reduction_factor,
            min_early_stopping_rate=config.min_early_stopping_rate,
        )
    return optuna.pruners.NopPruner()


def _changed_parts(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    return [part for part in FIXED_PARTS if stored.get(part) != current.get(part)]


def study_exists(sweep: Sweep) -> bool:
    settings = storage_settings(sweep)
    if not settings.exists():
        return False
    storage = open_storage(settings)
    try:
        return sweep.study_name in optuna.get_all_study_names(storage)
    finally:
        storage.engine.dispose()


def open_sweep_study(sweep: Sweep, *, create: bool) -> SweepStudy:
    """Create the study (once) or load it, and check it was made by this sweep file."""
    settings = storage_settings(sweep)
    if not create and not settings.exists():
        raise StudyError(
            f"study {sweep.study_name} does not exist yet ({settings.url}); "
            f"start it with `vtd-sweep run {sweep.path.name}`"
        )
    storage = open_storage(settings)
    current = study_settings(sweep)
    exists = sweep.study_name in optuna.get_all_study_names(storage)
    if not exists and not create:
        raise StudyError(
            f"study {sweep.study_name} does not exist yet in {settings.url}; "
            f"start it with `vtd-sweep run {sweep.path.name}`"
        )
    study = optuna.create_study(
        storage=storage,
        study_name=sweep.study_name,
        direction=sweep.direction,
        sampler=make_sampler(sweep),
        pruner=make_pruner(sweep),
        load_if_exists=True,
    )
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        if create:
            study.set_user_attr(SETTINGS_ATTR, current)
    else:
        changed = _changed_parts(stored, current)
        if study.direction.name.lower() != sweep.direction and "objective" not in changed:
            changed.append("objective")
        if changed:
            raise StudyError(
                f"study {sweep.study_name} was made with another {' and '.join(changed)} than "
                f"{sweep.path.name} now has; give the study a new name, or replace it with "
                f"`vtd-sweep run {sweep.path.name} --force-new` (its trials are deleted)"
            )
        if create and stored != current:  # repeats or other free settings: keep the latest
            study.set_user_attr(SETTINGS_ATTR, current)
    return SweepStudy(
        sweep=sweep,
        storage=storage,
        study=study,
        study_id=storage.get_study_id_from_name(sweep.study_name),
    )


def delete_study(sweep: Sweep) -> bool:
    """Delete the study from its storage; False when there was none."""
    settings = storage_settings(sweep)
    if not settings.exists():
        return False
    storage = open_storage(settings)
    if sweep.study_name not in optuna.get_all_study_names(storage):
        return False
    optuna.delete_study(study_name=sweep.study_name, storage=storage)
    return True


def _by_config(trials: Iterable[FrozenTrial]) -> dict[str, list[FrozenTrial]]:
    grouped: dict[str, list[FrozenTrial]] = {}
    for trial in trials:
        config_hash = trial.user_attrs.get("config_hash")
        if config_hash is not None:
            grouped.setdefault(config_hash, []).append(trial)
    return grouped


def superseded(trials: Iterable[FrozenTrial]) -> set[int]:
    """Trials that another trial retries (`retry_of`): no longer the word on their cell."""
    return {int(number) for trial in trials for number in trial.user_attrs.get("retry_of", [])}


def current_device(sweep: Sweep) -> Device:
    """The hardware trials of this sweep would run on here (see `record.Device`): the first
    GPU `nvidia-smi` lists (unless training is on the CPU), the host's memory, the cap. The
    worker itself never touches CUDA, hence `nvidia-smi`."""
    cap = sweep.file.memory_cap_mb
    gpu_name, gpu_total = None, None
    if sweep.base.device != "cpu" and shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            lines = subprocess.run(
                query, capture_output=True, text=True, timeout=20, check=True
            ).stdout.splitlines()
            if lines:
                name, _, total_mib = lines[0].rpartition(",")
                gpu_name, gpu_total = name.strip(), int(float(total_mib)) * 2**20
    return Device(
        gpu_name=gpu_name,
        gpu_total_bytes=gpu_total,
        host_total_bytes=psutil.virtual_memory().total,
        cap_bytes=None if cap is None else cap * 2**20,
    )


def out_of_memory_to_retry(
    trials: list[FrozenTrial], device: Device, *, retry: bool = False
) -> list[FrozenTrial]:
    """Out-of-memory trials whose result does not hold on `device` (other hardware, a larger
    cap, or `retry` asked for), and the trials they dominated; not those already retried."""
    done = superseded(trials)
    stale: set[int] = set()
    for trial in trials:
        outcome = read_outcome(trial.user_attrs)
        if (
            trial.state == TrialState.PRUNED
            and trial.number not in done
            and isinstance(outcome, OutOfMemory)
            and outcome.ran_out
            and not outcome.final_on(device, retry=retry)
        ):
            stale.add(trial.number)
    for trial in trials:
        outcome = read_outcome(trial.user_attrs)
        if (
            trial.number not in done
            and isinstance(outcome, OutOfMemory)
            and outcome.dominated_by in stale
        ):
            stale.add(trial.number)
    return [trial for trial in trials if trial.number in stale]


def plan_queue(
    sweep: Sweep,
    trials: list[FrozenTrial],
    *,
    device: Device | None = None,
    retry_out_of_memory: bool = False,
) -> list[QueuedTrial]:
    """The trials to queue so that every configuration (x repeat) runs once. Out-of-memory
    results of other hardware (`device`: this machine's) are run again, and with
    `retry_out_of_memory` all of them; a copy of another trial keeps no configuration live
    (its original, or the configuration run again, does)."""
    grouped = _by_config(trials)
    stale = {
        trial.number
        for trial in out_of_memory_to_retry(
            trials, device or current_device(sweep), retry=retry_out_of_memory
        )
    }
    live = {
        config_hash
        for config_hash, group in grouped.items()
        if any(
            trial.state in LIVE_STATES
            and trial.number not in stale
            and not isinstance(read_outcome(trial.user_attrs), DuplicateOf)
            for trial in group
        )
    }
    queued: list[QueuedTrial] = []

    def want(params: Mapping[str, Any], repeat: int, origin: str) -> None:
        resolved = resolve(sweep, params, repeat)
        config_hash = resolved.identity.config_hash
        if config_hash in live:
            return
        live.add(config_hash)
        failed = tuple(trial.number for trial in grouped.get(config_hash, []))
        queued.append(QueuedTrial(resolved, "retry" if failed else origin, failed))

    repeats = range(sweep.file.repeats)
    if sweep.file.sampler.name == "grid":
        cells = sweep.space.grid_cells()
        for repeat in repeats:  # all cells once before any second seed
            for params in cells:
                want(params, repeat, "grid")
    else:
        sampled: dict[str, dict[str, Any]] = {}
        for trial in sorted(trials, key=lambda t: t.number):
            cell_hash = trial.user_attrs.get("cell_hash")
            if cell_hash and trial.params and "duplicate_of" not in trial.user_attrs:
                sampled.setdefault(cell_hash, dict(trial.params))
        for repeat in repeats:
            for params in sampled.values():
                want(params, repeat, "repeat")
    return queued


def enqueue(sweep_study: SweepStudy, queued: list[QueuedTrial]) -> None:
    for item in queued:
        attrs = {**item.resolved.user_attrs(), "origin": item.origin}
        if item.retry_of:
            attrs["retry_of"] = list(item.retry_of)
        sweep_study.study.enqueue_trial(dict(item.resolved.params), user_attrs=attrs)
    if queued:
        logger.info("queued %d trial(s) in study %s", len(queued), sweep_study.sweep.study_name)


def _suggest_one(
    trial: optuna.Trial, name: str, distribution: optuna.distributions.BaseDistribution
) -> Any:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    assert isinstance(distribution, optuna.distributions.FloatDistribution)
    return trial.suggest_float(
        name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


def _pop_waiting(sweep_study: SweepStudy) -> tuple[optuna.Trial, int] | None:
    """The first queued trial this worker manages to set RUNNING, with its trial id."""
    storage = sweep_study.storage
    for frozen in sweep_study.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            sweep_study.study_id, frozen.number
        )
        if storage.get_heartbeat_interval() is not None:
            # Before the claim, so that a worker dying right after it leaves a stale trial
            # (a RUNNING trial that never had a heartbeat is never found stale).
            storage.record_heartbeat(trial_id)
        try:
            claimed = storage.set_trial_state_values(trial_id, state=TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        if claimed:
            # What Study.ask does after its own claim; ask itself would create a new trial
            # when the queue is empty, which a grid must never do.
            return optuna.Trial(sweep_study.study, trial_id), trial_id
    return None


def sampled_count(trials: Iterable[FrozenTrial]) -> int:
    """Trials sampled by workers (tpe / random), not their queued repeats and retries."""
    return sum(1 for trial in trials if trial.user_attrs.get("origin") == "sampled")


def claim_next(sweep_study: SweepStudy) -> Claim | None:
    """Take the next queued trial, or sample a new one (tpe / random, within n_trials)."""
    sweep = sweep_study.sweep
    popped = _pop_waiting(sweep_study)
    if popped is not None:
        trial, trial_id = popped
    else:
        if sweep.file.sampler.name == "grid":
            return None
        budget = sweep.file.n_trials or 0
        if sampled_count(sweep_study.study.get_trials(deepcopy=False)) >= budget:
            return None
        with warnings.catch_warnings():
            # "Heartbeat ... supposed to be used with Study.optimize": our workers beat themselves.
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = sweep_study.study.ask()
        trial_id = sweep_study.storage.get_trial_id_from_study_id_trial_number(
            sweep_study.study_id, trial.number
        )
        if sweep_study.storage.get_heartbeat_interval() is not None:
            # ask() made it RUNNING: its first heartbeat (a popped one had it before its claim).
            sweep_study.storage.record_heartbeat(trial_id)
    trial.set_user_attr("worker", worker_name())
    params = {
        name: _suggest_one(trial, name, distribution)
        for name, distribution in sweep.space.distributions().items()
    }
    attrs = trial.user_attrs
    if "config_hash" in attrs:  # queued: repeat and seed were fixed when it was queued
        resolved = resolve(sweep, params, int(attrs["repeat"]))
        origin = str(attrs.get("origin", "grid"))
        return Claim(trial=trial, resolved=resolved, origin=origin, trial_id=trial_id)
    resolved = resolve(sweep, params, 0)
    for key, value in {**resolved.user_attrs(), "origin": "sampled"}.items():
        trial.set_user_attr(key, value)
    return Claim(trial=trial, resolved=resolved, origin="sampled", trial_id=trial_id)


def queue_repeats(sweep_study: SweepStudy, claim: Claim) -> None:
    """A newly sampled configuration: queue its other seeds for any worker to take."""
    queued = [
        QueuedTrial(resolve(sweep_study.sweep, claim.resolved.params, repeat), "repeat")
        for repeat in range(1, sweep_study.sweep.file.repeats)
    ]
    enqueue(sweep_study, queued)


def find_original(study: optuna.Study, number: int, config_hash: str) -> FrozenTrial | None:
    """Another trial of the same configuration that makes this one unnecessary: a finished
    one (COMPLETE / PRUNED), or an unfinished one with a lower number (the first one runs)."""
    trials = study.get_trials(deepcopy=False)
    retried = superseded(trials)
    for other in trials:
        if other.state not in LIVE_STATES or other.number in retried:
            continue
        if other.number == number or other.user_attrs.get("config_hash") != config_hash:
            continue
        if other.state in DONE_STATES or other.number < number:
            return other
    return None


def wait_for_original(
    study: optuna.Study,
    number: int,
    config_hash: str,
    halt: threading.Event,
    poll_s: float,
) -> FrozenTrial | None:
    """The trial that makes trial `number` unnecessary (see `find_original`), once it has
    ended: an original still RUNNING is waited for, so that its copy takes its outcome, or,
    if it failed or was lost, finds none and runs the configuration itself. None at once
    when `halt` is set."""
    while True:
        original = find_original(study, number, config_hash)
        if original is None or original.state != TrialState.RUNNING:
            return original
        logger.info(
            "trial %d: same configuration as running trial %d; waiting for its outcome",
            number,
            original.number,
        )
        if halt.wait(poll_s):
            return None


def find_dominating_oom(study: optuna.Study, resolved: ResolvedTrial) -> FrozenTrial | None:
    """A trial that ran out of memory with everything else equal and batch and chunk size
    both at most this one's: this one would run out of memory too."""
    trials = study.get_trials(deepcopy=False)
    retried = superseded(trials)  # run again (other hardware, or asked): not the word any more
    for other in trials:
        attrs = other.user_attrs
        if (
            other.state == TrialState.PRUNED
            and other.number not in retried
            and attrs.get("out_of_memory")
            and attrs.get("context_hash") == resolved.identity.context_hash
            and int(attrs.get("batch_size", 0)) <= resolved.batch_size
            and int(attrs.get("chunk_size", 0)) <= resolved.chunk_size
        ):
            return other
    return None
