"""A study's trials read back without pandas: one plain row per Optuna trial, its typed
outcome, and how its epoch is selected in words.

`vtd-sweep status` and `run --dry-run` show these through rich and answer in about a second:
pandas alone takes 0.15 to 0.25 s to import. `results.trials_frame` is the same rows as a
table, for the plots and the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vtd.evaluate.names import metric_label
from vtd.sweep.plan.config import Sweep
from vtd.sweep.store import record
from vtd.sweep.store.study import SweepStudy, existing_study

TRIAL_ATTRS = (
    "cell",
    "repeat",
    "seed",
    "config_hash",
    "cell_hash",
    "origin",
    "reason",
    "best_epoch",
    "epochs_done",
    "duplicate_of",
    "dominated_by",
    "peak_host_mb",
    "peak_device_mb",
    "memory_cap_mb",
    "error_type",
    "signal",
    "exit_code",
    "interrupted",
    "injected",
    "duration_s",
    "train_seconds",
    "mlflow_run_id",
    "trial_dir",
)


def trial_rows(sweep: Sweep, sweep_study: SweepStudy | None = None) -> list[dict[str, Any]]:
    """One row per Optuna trial of the sweep's study, by trial number (none when there is
    no study yet): number, state, value, the searched settings by name, `TRIAL_ATTRS`,
    `out_of_memory` (ran out, or dominated by a trial that did), `outcome_record`, `ran`
    (False: pruned or copied without running), started / completed, and the best, last,
    initial and selected metrics. `sweep_study`: the study already opened."""
    if sweep_study is None:
        sweep_study = existing_study(sweep)
    if sweep_study is None:
        return []
    rows = []
    for trial in sweep_study.study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        params = trial.params or trial.system_attrs.get("fixed_params", {})
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            **{name: params.get(name) for name in sweep.space.names},
            **{key: attrs.get(key) for key in TRIAL_ATTRS},
            "out_of_memory": bool(attrs.get("out_of_memory") or attrs.get("oom_dominated")),
            # The typed outcome (vtd.sweep.store.record): tables and figures read its fields.
            "outcome_record": record.read_outcome(attrs),
            "ran": trial.state.is_finished()
            and "duplicate_of" not in attrs
            and "dominated_by" not in attrs,
            "started": trial.datetime_start,
            "completed": trial.datetime_complete,
        }
        row.update(
            {
                k: v
                for k, v in attrs.items()
                if k.startswith(("best_", "last_", "initial_", "selected_"))
            }
        )
        rows.append(row)
    sweep_study.storage.remove_session()
    return sorted(rows, key=lambda row: row["number"])


def outcome_record(row: Mapping[str, Any]) -> record.Outcome | None:
    """A row's typed outcome (`vtd.sweep.store.record`), as `trial_rows` reads it."""
    value = row.get("outcome_record")
    if value is None or isinstance(value, float):  # None, or NaN in a frame
        return None
    return value if not isinstance(value, str | dict) else record.from_json(value)


def selection_text(sweep: Sweep, reduce: str) -> str:
    """How a trial's epoch is selected, in words, for the caption under a table or figure."""
    objective = sweep.file.objective
    text = f"the epoch of its {reduce} {objective.split} {metric_label(objective.metric)}"
    if objective.optimistic:
        return text + " (selected on test: optimistic)"
    return text + " (selected on validation; test metrics at that epoch)"
