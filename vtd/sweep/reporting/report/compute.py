"""What the report computes from a study's tables: configurations, weights x data, pairs.

Numbers at full precision, as pandas tables (written as CSV beside the report).
"""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd

from vtd.sweep.reporting._tables import (
    Spread,
    StudyTables,
    failure_figure,
    out_of_memory_figure,
    ran_first,
)
from vtd.sweep.reporting.plots.shared import setting_name, value_text


def state_text(trials: pd.DataFrame) -> str:
    counts = trials["outcome"].value_counts()
    if len(counts) == 1:
        outcome = counts.index[0]
        first = trials.iloc[0]
        if outcome == "complete":
            return "COMPLETE"
        if outcome == "out_of_memory":
            return f"PRUNED: out of memory ({out_of_memory_figure(ran_first(trials))})"
        if outcome == "stopped":
            return "PRUNED: stopped by the pruner"
        if outcome == "interrupted":
            return "FAILED: interrupted (runs again with the next run)"
        if outcome == "failed":
            return f"FAILED: {failure_figure(first, 50)}"
        return "not finished: waiting or running"
    parts = []
    for outcome, count in counts.items():
        mine = trials[trials["outcome"] == outcome]
        if outcome == "out_of_memory":
            parts.append(f"{count} out of memory ({out_of_memory_figure(ran_first(mine))})")
        elif outcome in ("failed", "interrupted"):
            parts.append(f"{count} {outcome} ({failure_figure(mine.iloc[0], 40)})")
        elif outcome == "stopped":
            parts.append(f"{count} stopped by the pruner")
        else:
            parts.append(f"{count} {outcome}")
    return ", ".join(parts)


def configurations(tables: StudyTables) -> pd.DataFrame:
    """One row per configuration: settings, data, repeats, selected epochs, metrics, state.

    Metrics are those of the complete repeats at their selected epoch (`sel_<split>_<metric>`),
    as lists and as mean, std (n - 1) and range.
    """
    trials = tables.trials
    records = []
    for index, (_, group) in enumerate(trials.groupby("cell_hash", sort=False), start=1):
        group = group.sort_values("repeat")
        first = group.iloc[0]
        done = group[group["outcome"] == "complete"]
        record: dict[str, Any] = {
            "id": f"C{index}",
            "configuration": first["cell"],
            **{name: first[name] for name in tables.settings},
            "data": first["data"],
            "repeats": len(group),
            "complete": len(done),
            "trials": " ".join(str(int(n)) for n in group["number"]),
            "selected_epochs": " ".join(str(int(e)) for e in done["selected_epoch"].dropna()),
        }
        for prefix in tables.splits:
            for metric in ("auc", "dist"):
                spread = Spread.of(done, f"sel_{prefix}_{metric}")
                key = f"{prefix}_{metric}"
                record[f"{key}_values"] = " ".join(f"{v!r}" for v in spread.values)
                record[f"{key}_mean"] = spread.mean
                record[f"{key}_std"] = spread.std
                record[f"{key}_range"] = spread.range
                record[f"{key}_text"] = spread.text()
        record["state"] = state_text(group)
        records.append(record)
    return pd.DataFrame(records)


def weights_by_data(tables: StudyTables) -> tuple[pd.DataFrame, str]:
    """Initial weights (and other settings) x training data: final-epoch metrics.

    Returns the long table (one row per row label x data) and the split it reads (test,
    or validation when the study has no test split).
    """
    prefix = "test" if "test" in tables.splits else "val"
    trials = tables.trials
    if trials.empty:
        return pd.DataFrame(), prefix
    rest = [
        name
        for name in tables.settings
        if name != "initial_weights" and not name.startswith("data.") and trials[name].nunique() > 1
    ]
    records = []
    weights = {value: index for index, value in enumerate(tables.values_of("initial_weights"))}
    # Rows grouped by initial weights, as in the seed's table; the rest in the grid's order.
    ordered = trials.sort_values("initial_weights", key=lambda v: v.map(weights), kind="stable")
    for group_key, group in ordered.groupby(["initial_weights", *rest, "data"], sort=False):
        *values, data = group_key
        label = value_text(values[0]) + "".join(
            f", {setting_name(name)} {value_text(value)}"
            for name, value in zip(rest, values[1:], strict=True)
        )
        done = group[group["outcome"] == "complete"]
        auc = Spread.of(done, f"final_{prefix}_auc")
        dist = Spread.of(done, f"final_{prefix}_dist")
        records.append(
            {
                "initial_weights": label,
                "data": data,
                "n": auc.count,
                "epochs": " ".join(str(int(e)) for e in done["final_epoch"].dropna()),
                f"{prefix}_auc_mean": auc.mean,
                f"{prefix}_auc_std": auc.std,
                f"{prefix}_dist_mean": dist.mean,
                f"{prefix}_dist_std": dist.std,
                "text": (
                    f"{auc.text()} / {dist.text()} (n={auc.count})"
                    if auc.count
                    else f"— ({state_text(group)})"
                ),
            }
        )
    return pd.DataFrame(records), prefix


def pairs(table: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Every pair of configurations with 2+ complete repeats, per metric, with the verdict."""
    records = []
    if table.empty:
        return pd.DataFrame()
    usable = table[table["complete"] >= 2]
    for metric in ("auc", "dist"):
        key = f"{prefix}_{metric}"
        if f"{key}_mean" not in usable:
            continue
        rows = [row for _, row in usable.iterrows() if not pd.isna(row[f"{key}_mean"])]
        for first, second in itertools.combinations(rows, 2):
            difference = abs(first[f"{key}_mean"] - second[f"{key}_mean"])
            spread = max(first[f"{key}_range"], second[f"{key}_range"])
            records.append(
                {
                    "metric": key,
                    "a": first["id"],
                    "b": second["id"],
                    "mean_a": first[f"{key}_mean"],
                    "mean_b": second[f"{key}_mean"],
                    "difference": difference,
                    "spread": spread,
                    "distinguishable": bool(difference > spread),
                }
            )
    return pd.DataFrame(records)
