"""A study as the plots and the report see it: one row per configuration x seed, with outcome.

Built on `reporting.results` (Optuna's trials, MLflow's per-epoch metrics). A configuration
(cell) can have several Optuna trials per seed: a FAILED one queued again, a copy that was
not run because an identical trial had finished. `load_tables` keeps one trial per
configuration x seed, in this order of preference: COMPLETE, PRUNED, FAILED, RUNNING,
WAITING; a trial that ran before a copy that did not; then the latest. Its outcome is one of

- `complete`: trained every epoch;
- `stopped`: pruned by the pruner (trained some epochs);
- `out_of_memory`: pruned as out of memory, or dominated by such a trial (not run);
- `failed`, `interrupted`: FAILED (an error, a dead process; Ctrl-C);
- `unfinished`: waiting or running.

Numbers: a trial's `selected_epoch` is chosen on the objective's split and metric, never on
another: its best or last epoch there (`StudyTables.reduce`: `report.reduce`, else the
objective's, whose epoch is the trial's `best_epoch`). `sel_<split>_<metric>` are its
metrics at that epoch, for every split (test metrics are read at the epoch validation
selected), `final_<split>_<metric>` at its last epoch (both read from MLflow's per-epoch
metrics). Tables and heatmaps read these; `selection_text` says in words how the epoch was
selected, for the caption under each of them. The worker's per-metric summary
(`best_<split>_<metric>`, each metric's best over all epochs) is not a selection and no
table or figure reads it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

import pandas as pd

from vtd.data.config import DataConfig, SplitSpec
from vtd.evaluate.names import SPLIT_NAMES
from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.space import apply_params, get_path
from vtd.sweep.plan.weights import WEIGHTS_FRESH
from vtd.sweep.reporting.results import epochs_frame, trials_frame
from vtd.sweep.reporting.trials import outcome_record
from vtd.sweep.store import record
from vtd.sweep.store.words import oom_figure, short_words, words

Outcome = Literal["complete", "stopped", "out_of_memory", "failed", "interrupted", "unfinished"]
METRICS = ("auc", "dist")
DIGITS = 3
WITH_CURVES = ("complete", "stopped")
_STATE_RANK = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 4}


@dataclass(frozen=True)
class StudyTables:
    """The study's trials (one per configuration x seed) and their per-epoch metrics."""

    sweep: Sweep
    trials: pd.DataFrame
    epochs: pd.DataFrame
    settings: tuple[str, ...]
    all_trials: int
    reduce: Literal["best", "last"]

    @property
    def splits(self) -> tuple[str, ...]:
        """Prefixes of the evaluated splits, ("val", "test") in that order: those with
        per-epoch metrics, or before any epoch has finished, those the data defines."""
        measured = tuple(
            prefix
            for prefix in SPLIT_NAMES
            if any(f"{prefix}_{metric}" in self.epochs.columns for metric in METRICS)
        )
        if measured:
            return measured
        data = self.sweep.base.data
        has = {
            "val": data.validation is not None,
            "test": data.test is not None or data.cross_validation is not None,
        }
        return tuple(prefix for prefix in SPLIT_NAMES if has[prefix])

    def values_of(self, name: str) -> tuple[Any, ...]:
        """The values of a setting in the order of the sweep file (observed ones, for ranges)."""
        return setting_values(self.sweep, self.trials, name)

    def curves(self, numbers: list[int]) -> pd.DataFrame:
        return self.epochs[self.epochs["number"].isin(numbers)]


def setting_values(sweep: Sweep, trials: pd.DataFrame, name: str) -> tuple[Any, ...]:
    """A setting's values: listed ones in the file's order, else those observed, sorted."""
    listed = sweep.space.values_of(name)
    if listed:
        return tuple(listed)
    observed = list(trials[name].dropna().unique()) if name in trials else []
    return tuple(sorted(observed, key=_sort_key))


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def base_setting(sweep: Sweep, name: str) -> Any:
    """The value of a setting that the search space does not vary."""
    if name == "initial_weights":
        return WEIGHTS_FRESH if sweep.base_weights is None else sweep.base_weights
    return get_path(sweep.base.model_dump(mode="json"), name)


def training_data_label(data: DataConfig) -> str:
    """What a trial trains on, in a few words: its sources and how train was chosen."""
    names = [source.dataset for source in data.sources]
    if not isinstance(data.train, SplitSpec):  # several selections added up
        return " + ".join(names) + " (listed train selections)"
    train = data.train
    if data.cross_validation is None and train.sources is not None:
        names = [name for name in names if any(fnmatchcase(name, p) for p in train.sources)]
    label = " + ".join(names)
    cv = data.cross_validation
    if cv is not None:
        return f"{label}, fold {cv.fold} of {cv.folds}"
    if data.split is not None:
        return f"{label}, split {data.split}"
    if "train" in data.model_fields_set and (train.shows or train.persons):
        label += " (listed train shows)" if train.shows else " (listed train persons)"
    return label


def _finite(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class Spread:
    """Values of one metric over a configuration's complete repeats."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, frame: pd.DataFrame, column: str) -> Spread:
        """The column's values in `frame` (none when it has no such column)."""
        if column not in frame:
            return cls(())
        return cls(tuple(float(v) for v in frame[column].dropna()))

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None below two values."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def range(self) -> float | None:
        return max(self.values) - min(self.values) if self.values else None

    def text(self) -> str:
        if self.mean is None:
            return "—"
        if self.std is None:
            return f"{self.mean:.{DIGITS}f}"
        return f"{self.mean:.{DIGITS}f} ± {self.std:.{DIGITS}f}"


def ran_first(trials: pd.DataFrame) -> pd.Series:
    """The trial whose reason to show: one that ran says more than one pruned because
    another ran out of memory; then the earliest."""
    return trials.sort_values(["ran", "number"], ascending=[False, True]).iloc[0]


def _pick(group: pd.DataFrame) -> pd.Series:
    ranked = group.assign(
        _rank=group["state"].map(_STATE_RANK).fillna(9),
        _copy=~group["ran"].astype(bool),
        _latest=-group["number"],
    ).sort_values(["_rank", "_copy", "_latest"])
    return ranked.iloc[0]


def outcome_of(row: Mapping[str, Any]) -> Outcome:
    state = row["state"]
    if state == "COMPLETE":
        return "complete"
    if state == "PRUNED":
        return "out_of_memory" if row.get("out_of_memory") else "stopped"
    if state == "FAIL":
        return "interrupted" if row.get("interrupted") is True else "failed"
    return "unfinished"


def out_of_memory_figure(row: Mapping[str, Any]) -> str:
    """What made a trial run out of memory, in a few words (the figure that triggered it)."""
    outcome = outcome_record(row)
    if isinstance(outcome, record.OutOfMemory):
        return oom_figure(outcome)
    return "out of memory"


def outcome_words(row: Mapping[str, Any]) -> str:
    """A trial's outcome in words, without its state (`vtd.sweep.store.words.words`)."""
    outcome = outcome_record(row)
    return "" if outcome is None else words(outcome)


def failure_figure(row: Mapping[str, Any], width: int = 60) -> str:
    """A FAILED trial's reason, short: the error type and message, a signal, an exit code."""
    outcome = outcome_record(row)
    return "failed" if outcome is None else short_words(outcome, width)


def _selected_epoch(
    curves: pd.DataFrame | None, best_epoch: Any, how: str, sweep: Sweep
) -> int | None:
    """The epoch `how` selects on the objective's split and metric (see the docstring)."""
    if curves is None or curves.empty:
        return None
    objective = sweep.file.objective
    if how == "last":
        return int(curves["epoch"].iloc[-1])
    if objective.reduce == "best":  # the objective's own choice, as Optuna has it
        return int(best_epoch) if _finite(best_epoch) else None
    column = f"{'val' if objective.split == 'validation' else 'test'}_{objective.metric}"
    values = curves[column].dropna() if column in curves else pd.Series(dtype="float64")
    if values.empty:
        return None
    first_best = values.idxmax() if objective.resolved_direction == "maximize" else values.idxmin()
    return int(curves.loc[first_best, "epoch"])


def load_tables(sweep: Sweep) -> StudyTables:
    """The study's tables (empty frames when nothing has run yet)."""
    report = sweep.file.report
    how = report.reduce or sweep.file.objective.reduce
    raw = trials_frame(sweep)
    epochs = epochs_frame(sweep)
    searched = tuple(sweep.space.names)
    # The grid's settings, and initial weights always (the weights x data table's rows).
    shown = (*(getattr(report, role) for role in ("rows", "columns", "lines")), "initial_weights")
    settings = tuple(dict.fromkeys((*searched, *shown)))
    if raw.empty:
        empty = pd.DataFrame(columns=["number", "state", "outcome", *settings])
        return StudyTables(sweep, empty, epochs, settings, 0, how)
    for name in settings:
        if name not in searched:
            raw[name] = [base_setting(sweep, name)] * len(raw)
    raw = raw[raw["config_hash"].notna()]
    kept = [_pick(group) for _, group in raw.groupby("config_hash", sort=False)]
    trials = pd.DataFrame(kept).drop(columns=["_rank", "_copy", "_latest"])
    # Configurations in the order of the sweep file's grid, then seeds.
    order = []
    for name in settings:
        rank = {value: index for index, value in enumerate(setting_values(sweep, trials, name))}
        trials[f"_order_{name}"] = trials[name].map(rank)
        order.append(f"_order_{name}")
    trials = trials.sort_values([*order, "repeat", "number"], ignore_index=True)
    trials = trials.drop(columns=order)
    trials["outcome"] = [outcome_of(row) for row in trials.to_dict("records")]
    trials["data"] = [_data_label(sweep, row, searched) for row in trials.to_dict("records")]

    metric_columns = [
        f"{prefix}_{metric}"
        for prefix in SPLIT_NAMES
        for metric in METRICS
        if f"{prefix}_{metric}" in epochs.columns
    ]
    curves = epochs[epochs["number"].isin(trials["number"])] if not epochs.empty else epochs
    rows: dict[str, list[Any]] = {
        f"{kind}_{column}": [] for kind in ("sel", "final") for column in metric_columns
    }
    rows["final_epoch"] = []
    rows["selected_epoch"] = []
    by_number = {number: group for number, group in curves.groupby("number")} if len(curves) else {}
    for trial in trials.to_dict("records"):
        mine = by_number.get(trial["number"])
        has_curves = mine is not None and trial["outcome"] in WITH_CURVES
        mine = mine.sort_values("epoch") if has_curves else None
        epoch = _selected_epoch(mine, trial.get("best_epoch"), how, sweep)
        selected = mine[mine["epoch"] == epoch] if mine is not None and epoch is not None else None
        rows["final_epoch"].append(int(mine["epoch"].iloc[-1]) if has_curves else None)
        rows["selected_epoch"].append(epoch)
        for column in metric_columns:
            at_best = None
            if selected is not None and len(selected):
                at_best = selected[column].iloc[0]
            rows[f"sel_{column}"].append(at_best if _finite(at_best) else None)
            last = mine[column].iloc[-1] if has_curves else None
            rows[f"final_{column}"].append(last if _finite(last) else None)
    for column, values in rows.items():
        trials[column] = pd.Series(values, index=trials.index, dtype="float64")
    with_curves = trials.loc[trials["outcome"].isin(WITH_CURVES), "number"]
    kept_epochs = epochs[epochs["number"].isin(with_curves)] if not epochs.empty else epochs
    return StudyTables(sweep, trials, kept_epochs.reset_index(drop=True), settings, len(raw), how)


def _data_label(sweep: Sweep, trial: Mapping[str, Any], searched: tuple[str, ...]) -> str:
    params = {
        name: trial[name]
        for name in searched
        if name.startswith("data.") and _finite(trial.get(name))
    }
    raw = apply_params(sweep.base_raw, params)["data"] if params else None
    data = DataConfig.model_validate(raw) if raw is not None else sweep.base.data
    return training_data_label(data)
