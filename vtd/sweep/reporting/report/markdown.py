"""How the report is written: `report.md`'s sections, from the computed tables."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vtd.evaluate.names import METRIC_LABELS, SPLIT_NAMES, metric_label
from vtd.sweep.plan.config import OPTIMISTIC_NOTE, Sweep
from vtd.sweep.reporting._published import published_section
from vtd.sweep.reporting._tables import (
    DIGITS,
    StudyTables,
    base_setting,
    outcome_words,
)
from vtd.sweep.reporting.plots.shared import setting_name, value_text
from vtd.sweep.reporting.trials import selection_text

MAX_PAIR_LINES = 40
RULE = (
    "two configurations are *not distinguishable at these repeats* when the difference of "
    "their means is no larger than the spread across repeats: |mean A − mean B| ≤ "
    "max(range A, range B), where a configuration's range is max − min over its complete "
    "repeats. Only configurations with at least 2 complete repeats are compared: with one "
    "repeat the spread is unknown."
)


def _display(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return _display(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _settings_section(sweep: Sweep, tables: StudyTables) -> list[str]:
    file = sweep.file
    objective = file.objective
    base = sweep.base
    lines = ["## Settings", ""]
    sampler = file.sampler.name
    if sampler != "grid":
        sampler += f" (seed {file.sampler.seed}, {file.n_trials} configurations)"
    seeds = "1 seed" if file.repeats == 1 else f"{file.repeats} seeds"
    lines.append(f"- sampler: {sampler}; repeats: {seeds} per configuration")
    direction = objective.resolved_direction
    lines.append(
        f"- objective: the {objective.reduce} epoch's {objective.split} "
        f"{metric_label(objective.metric)} of each trial ({direction})"
    )
    if objective.optimistic:
        lines.append(f"- **{OPTIMISTIC_NOTE}**")
    else:
        lines.append(
            f"- selection reads the {objective.split} split only; test metrics are reported apart"
        )
    lines.append(f"- pruner: {file.pruner.name}")
    if file.memory_cap_mb:
        lines.append(f"- host memory cap per trial: {file.memory_cap_mb} MB")
    space = "; ".join(
        f"{d.name} {list(d.choices)}"
        if d.kind == "categorical"
        else f"{d.name} {d.low}..{d.high}{' (log)' if d.log else ''}"
        for d in sweep.space.dimensions
    )
    lines.append(f"- search space: {space or 'none (one configuration)'}")
    searched = set(sweep.space.names)
    fixed = {
        "epochs": base.epochs,
        "model": base.model.variant,
        "initial_weights": base_setting(sweep, "initial_weights"),
        "batch_size": base.batch_size,
        "chunk_size": base.chunk_size,
        "lr": base.lr,
        "freeze": base.freeze,
        "precision": base.precision,
    }
    lines.append(
        "- training: "
        + ", ".join(f"{key} {value}" for key, value in fixed.items() if key not in searched)
    )
    data = base.data
    sources = ", ".join(f"{s.dataset} ({s.root.as_posix()})" for s in data.sources)
    lines.append(f"- data: {sources}")
    if data.cross_validation is not None:
        cv = data.cross_validation
        lines.append(f"- splits: {cv.folds}-fold cross-validation by {data.group_by}")
    validation = data.validation
    if validation is not None:
        held = (
            f"{validation.groups} training {data.group_by}(s) held out"
            if hasattr(validation, "groups")
            else "listed"
        )
        lines.append(f"- validation: {held}")
    counts = tables.trials["outcome"].value_counts() if len(tables.trials) else {}
    summary = ", ".join(f"{count} {outcome.replace('_', ' ')}" for outcome, count in counts.items())
    lines.append(
        f"- trials: {tables.all_trials} in the study, {len(tables.trials)} once per "
        f"configuration and seed ({summary or 'none yet'})"
    )
    return lines


def _configurations_section(table: pd.DataFrame, tables: StudyTables) -> list[str]:
    lines = ["## Configurations", ""]
    if table.empty:
        return [*lines, "No trial has finished yet.", ""]
    lines.append(
        f"Metrics at each repeat's selected epoch ({selection_text(tables.sweep, tables.reduce)}),"
        " mean ± sample standard deviation over the complete repeats; `best epoch` lists them. "
        "Distance is in normalised image units (lower is better). The heatmaps show the same "
        "means."
    )
    lines.append("")
    settings = [name for name in tables.settings if name != "initial_weights"]
    header = ["#", "initial weights", "data", *map(setting_name, settings), "repeats"]
    header.append("best epoch")
    metric_columns = [
        (f"{prefix}_{metric}", f"{SPLIT_NAMES[prefix]} {METRIC_LABELS[metric]}")
        for prefix in tables.splits
        for metric in ("auc", "dist")
    ]
    header += [title for _, title in metric_columns] + ["state"]
    rows = []
    for _, row in table.iterrows():
        rows.append(
            [
                row["id"],
                value_text(row["initial_weights"]),
                row["data"],
                *(row[name] for name in settings),
                f"{row['complete']}/{row['repeats']}",
                row["selected_epochs"].replace(" ", ", ") or "—",
                *(row[f"{key}_text"] for key, _ in metric_columns),
                row["state"],
            ]
        )
    return [*lines, _md_table(header, rows), ""]


def _weights_section(long: pd.DataFrame, prefix: str) -> list[str]:
    lines = ["## Initial weights × training data", ""]
    if long.empty:
        return [*lines, "No trial has finished yet.", ""]
    split = SPLIT_NAMES[prefix]
    note = "" if prefix == "test" else " (the study has no test split: validation)"
    lines.append(
        f"Final-epoch {split} AUC / distance{note}, mean ± sample standard deviation over "
        "complete repeats (n)."
    )
    lines.append("")
    wide = long.pivot_table(
        index="initial_weights", columns="data", values="text", aggfunc="first", sort=False
    )
    rows = [[index, *(wide.loc[index, column] for column in wide.columns)] for index in wide.index]
    lines.append(_md_table(["initial weights", *wide.columns], rows))
    return [*lines, ""]


def _published_section(tables: StudyTables, table: pd.DataFrame) -> list[str]:
    """Published figures beside ours (`report.published` of the sweep file), if any."""
    section = published_section(tables, table)
    if section is None:
        return []
    intro, header, rows = section
    return [*intro, _md_table(header, rows), ""]


def _pairs_section(table: pd.DataFrame, verdicts: pd.DataFrame, prefix: str) -> list[str]:
    split = SPLIT_NAMES[prefix]
    lines = ["## Which differences are real", "", f"Rule: {RULE}", ""]
    if verdicts.empty:
        few = int((table["complete"] < 2).sum()) if len(table) else 0
        lines.append(
            f"No pair can be judged: {few} configuration(s) have fewer than 2 complete repeats."
        )
        return [*lines, ""]
    labels = dict(zip(table["id"], table["configuration"], strict=True))
    unknown = table.loc[(table["complete"] < 2) & (table["complete"] > 0), "id"].tolist()
    if unknown:
        lines += [
            f"Not compared (one complete repeat, spread unknown): {', '.join(unknown)}.",
            "",
        ]
    for metric in ("auc", "dist"):
        key = f"{prefix}_{metric}"
        mine = verdicts[verdicts["metric"] == key]
        if mine.empty:
            continue
        same = mine[~mine["distinguishable"]]
        lines.append(
            f"By {split} {METRIC_LABELS[metric]} at the selected epoch: {len(same)} of "
            f"{len(mine)} pairs not distinguishable at these repeats."
        )
        if len(same):
            lines.append("")
        for _, pair in same.head(MAX_PAIR_LINES).iterrows():
            lines.append(
                f"- {pair['a']} ({labels[pair['a']]}) vs {pair['b']} ({labels[pair['b']]}): "
                f"{pair['mean_a']:.{DIGITS}f} vs {pair['mean_b']:.{DIGITS}f}, "
                f"|difference| {pair['difference']:.{DIGITS}f} ≤ spread "
                f"{pair['spread']:.{DIGITS}f}: not distinguishable at these repeats"
            )
        if len(same) > MAX_PAIR_LINES:
            lines.append(f"- … and {len(same) - MAX_PAIR_LINES} more (pairs.csv has them all)")
        lines.append("")
    return lines


def _problems_section(tables: StudyTables) -> list[str]:
    trials = tables.trials
    if trials.empty:
        return []
    bad = trials[trials["outcome"].isin(("out_of_memory", "failed", "interrupted"))]
    if bad.empty:
        return []
    rows = [
        [
            int(row["number"]),
            row["cell"],
            int(row["seed"]) if not pd.isna(row["seed"]) else "",
            row["state"],
            "no" if not row["ran"] else "yes",
            outcome_words(row),
        ]
        for _, row in bad.iterrows()
    ]
    header = ["trial", "configuration", "seed", "state", "ran", "reason"]
    return ["## Out-of-memory and failed trials", "", _md_table(header, rows), ""]


def _plots_section(plots: dict[str, Path], folder: Path) -> list[str]:
    lines = ["## Plots", ""]
    if not plots:
        return [*lines, "No plot: no trial has finished yet.", ""]
    for name, path in plots.items():
        lines.append(f"![{name}]({path.relative_to(folder).as_posix()})")
        lines.append("")
    return lines


def render(
    tables: StudyTables,
    plots: dict[str, Path],
    folder: Path,
    *,
    configurations_table: pd.DataFrame,
    weights_table: pd.DataFrame,
    weights_split: str,
    verdicts: pd.DataFrame,
    published: pd.DataFrame | None = None,
) -> str:
    sweep = tables.sweep
    lines = [
        f"# Study `{sweep.study_name}`",
        "",
        f"Sweep file `{sweep.path.name}`; written {time.strftime('%Y-%m-%d %H:%M:%S')} by "
        f"`vtd-sweep`; MLflow experiment `{sweep.study_name}` at `{sweep.tracking_uri}`.",
        "",
    ]
    if sweep.file.objective.optimistic:
        lines += [f"> **{OPTIMISTIC_NOTE}**", ""]
    lines += _settings_section(sweep, tables) + [""]
    lines += _configurations_section(configurations_table, tables)
    lines += _weights_section(weights_table, weights_split)
    if published is not None:
        lines += _published_section(tables, published)
    lines += _pairs_section(configurations_table, verdicts, weights_split)
    lines += _problems_section(tables)
    lines += _plots_section(plots, folder)
    return "\n".join(lines).rstrip() + "\n"
