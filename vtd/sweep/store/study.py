"""The Optuna study of a sweep: created once or resumed, and claiming trials.

Identity: every trial carries user attributes `config_hash`, `cell_hash`, `context_hash`
(see `vtd.sweep.plan.identity`), `cell` (readable), `repeat`, `seed`, `origin`.

What to queue (and which copies and out-of-memory results stand) is `vtd.sweep.store.queue`.

Claiming (`claim_next`, by workers): a queued trial is taken by setting it RUNNING, which
succeeds for exactly one worker (see `vtd.sweep.store.storage` for SQLite); a grid worker that
finds the queue empty stops instead of asking Optuna for a new trial. A worker records the
trial's first heartbeat before it claims it and names itself on it (user attribute `worker`,
host:pid), so that a worker dying at any moment leaves a trial that goes stale
(`vtd.sweep.store.heartbeat`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.identity import MemorySizes, TrialIdentity, canonical_config, identify
from vtd.sweep.plan.space import apply_params
from vtd.sweep.store.storage import StorageSettings, open_storage
from vtd.train.config import TrainConfig

logger = logging.getLogger(__name__)

SETTINGS_ATTR = "vtd_sweep"
# The parts of a study that must not change under it; everything else may (repeats, pruner,
# memory cap, faults ...).
FIXED_PARTS = ("sampler", "objective", "search_space", "training")


class StudyError(RuntimeError):
    """A study that cannot be used as asked; the message says how to proceed."""


class NoStudyYet(StudyError):
    """The sweep's study has not been created yet."""


@dataclass(frozen=True)
class ResolvedTrial(MemorySizes):
    """One trial's parameters, seed and the training configuration they resolve to."""

    params: dict[str, Any]
    repeat: int
    seed: int
    config: TrainConfig
    identity: TrialIdentity
    cell: str

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
        raise NoStudyYet(
            f"study {sweep.study_name} does not exist yet ({settings.url}); "
            f"start it with `vtd-sweep run {sweep.path.name}`"
        )
    storage = open_storage(settings)
    current = study_settings(sweep)
    exists = sweep.study_name in optuna.get_all_study_names(storage)
    if not exists and not create:
        storage.engine.dispose()
        raise NoStudyYet(
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


def existing_study(sweep: Sweep) -> SweepStudy | None:
    """The sweep's study, or None when it does not exist yet: one opening of the storage
    (each costs a schema check), where `study_exists` and then `open_sweep_study` cost two."""
    try:
        return open_sweep_study(sweep, create=False)
    except NoStudyYet:
        return None


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
