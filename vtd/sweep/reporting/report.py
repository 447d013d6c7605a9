"""`studies/<study>/report.md`, its plots and tables; logged to the study's MLflow parent run.

`write_report(sweep)` is run at the end of `vtd-sweep run` and by `vtd-sweep report FILE`.
It writes, under `studies/<study>/`:

- `report.md`: the study's settings; one row per configuration (its settings, training data,
  repeats, selected epochs, validation and test AUC and distance at the selected epoch as
  mean ± std over repeats, state); the table of initial weights x training data (final-epoch
  test AUC / distance); which pairs of configurations are not distinguishable at these
  repeats (the rule is stated in the report); the trials that ran out of memory or failed;
  the plots, linked relatively so that the folder can be moved or read in MLflow;
- `plots/*.png` (see `vtd.sweep.reporting.plots`);
- `configurations.csv`, `weights_by_data.csv`, `pairs.csv`: the tables at full precision;
  `published.csv` and a "published (lab) vs this study" section when the sweep file names
  published figures (`report.published`, see `vtd.sweep.reporting._published`).

MLflow: the files go to the artifacts of a parent run, under `report/`: at the end of
`vtd-sweep run`, that run's parent run; from `vtd-sweep report`, the study's latest parent
run (the latest `vtd-sweep run`), whose `report/` files are overwritten, so the latest run holds
the latest report; a study without one gets a run named "report" (tag vtd.command=report).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from vtd.evaluate.names import SPLIT_NAMES
from vtd.sweep.execute.session import OPTIMISTIC_NOTE
from vtd.sweep.plan.config import Sweep
from vtd.sweep.reporting._published import published_section, published_table
from vtd.sweep.reporting._tables import (
    DIGITS,
    Spread,
    StudyTables,
    base_setting,
    failure_figure,
    load_tables,
    out_of_memory_figure,
    outcome_words,
    ran_first,
    selection_text,
)
from vtd.sweep.reporting.plots import (
    METRIC_NAMES,
    GridLayout,
    classify_cells,
    grid_figure,
    heatmap_figure,
    optuna_views,
    optuna_views_for,
    save,
    setting_name,
    value_text,
)
from vtd.sweep.store.study import StudyError, open_sweep_study, study_exists
from vtd.sweep.store.tracking import Tracker

logger = logging.getLogger(__name__)

REPORT_NAME = "report.md"
PLOTS_DIR = "plots"
ARTIFACT_DIR = "report"
MAX_PAIR_LINES = 40
RULE = (
    "two configurations are *not distinguishable at these repeats* when the difference of "
    "their means is no larger than the spread across repeats: |mean A − mean B| ≤ "
    "max(range A, range B), where a configuration's range is max − min over its complete "
    "repeats. Only configurations with at least 2 complete repeats are compared: with one "
    "repeat the spread is unknown."
)


@dataclass
class ReportFiles:
    """What `write_report` wrote, and the MLflow run that holds it."""

    report: Path
    plots: dict[str, Path] = field(default_factory=dict)
    tables: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None

    def paths(self) -> list[Path]:
        return [self.report, *self.tables.values(), *self.plots.values()]


# --- numbers ------------------------------------------------------------------------------
def _state_text(trials: pd.DataFrame) -> str:
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


def _display(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


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
        record["state"] = _state_text(group)
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
                    else f"— ({_state_text(group)})"
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


# --- markdown -----------------------------------------------------------------------------
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
        f"{METRIC_NAMES.get(objective.metric, objective.metric)} of each trial ({direction})"
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
        (f"{prefix}_{metric}", f"{SPLIT_NAMES[prefix]} {METRIC_NAMES[metric]}")
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
            f"By {split} {METRIC_NAMES[metric]} at the selected epoch: {len(same)} of "
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


# --- the whole report ---------------------------------------------------------------------
def draw_plots(tables: StudyTables, folder: Path) -> dict[str, Path]:
    """Every figure of the study as PNG under `folder` (old PNGs there are removed first)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    plots: dict[str, Path] = {}
    if tables.trials.empty:
        return plots
    layout = GridLayout.of(tables)
    cells = classify_cells(tables, layout)
    for prefix in tables.splits:
        for metric in ("auc", "dist"):
            name = f"grid_{prefix}_{metric}"
            figure = grid_figure(tables, layout, cells, split=prefix, metric=metric)
            plots[name] = save(figure, folder / f"{name}.png")
    for prefix in tables.splits if len(tables.epochs) else ():
        name = f"heatmap_{prefix}"
        plots[name] = save(heatmap_figure(tables, layout, split=prefix), folder / f"{name}.png")
    which = optuna_views_for(tables)
    if not which:  # a grid without pruner: the study need not be opened again
        return plots
    sweep_study = open_sweep_study(tables.sweep, create=False)
    try:
        views = optuna_views(tables, sweep_study.study, folder, which)
    finally:
        sweep_study.storage.remove_session()
    plots.update({f"optuna_{name}": path for name, path in views.items()})
    return plots


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


def write_report(
    sweep: Sweep, *, parent_run_id: str | None = None, log_to_mlflow: bool = True
) -> ReportFiles:
    """Write the report, tables and plots of the sweep's study; log them to MLflow."""
    if not study_exists(sweep):
        raise StudyError(
            f"study {sweep.study_name} does not exist yet; start it with "
            f"`vtd-sweep run {sweep.path.name}`"
        )
    folder = sweep.study_dir
    folder.mkdir(parents=True, exist_ok=True)
    tables = load_tables(sweep)
    plots = draw_plots(tables, folder / PLOTS_DIR)
    configurations_table = configurations(tables) if len(tables.trials) else pd.DataFrame()
    weights_table, weights_split = weights_by_data(tables)
    verdicts = pairs(configurations_table, weights_split)
    published = published_table(tables, _state_text)
    files = ReportFiles(report=folder / REPORT_NAME, plots=plots)
    named_tables = [
        ("configurations", configurations_table),
        ("weights_by_data", weights_table),
        ("pairs", verdicts),
    ]
    if sweep.file.report.published is not None:
        named_tables.append(("published", published))
    for name, table in named_tables:
        path = folder / f"{name}.csv"
        table.to_csv(path, index=False)
        files.tables[name] = path
    text = render(
        tables,
        plots,
        folder,
        configurations_table=configurations_table,
        weights_table=weights_table,
        weights_split=weights_split,
        verdicts=verdicts,
        published=published,
    )
    files.report.write_text(text, encoding="utf-8")
    logger.info("report written to %s", files.report)
    if log_to_mlflow:
        files.run_id = log_report(sweep, files, parent_run_id)
    return files


def latest_parent_run(client: MlflowClient, experiment_id: str) -> str | None:
    """The study's latest `vtd-sweep run` parent run, if any."""
    runs = client.search_runs(
        [experiment_id],
        filter_string="tags.`vtd.command` = 'run'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def log_report(sweep: Sweep, files: ReportFiles, parent_run_id: str | None = None) -> str:
    """Log the report's files under `report/` of the parent run (see the module docstring)."""
    tracker = Tracker(sweep)
    client = tracker.client
    run_id = parent_run_id or latest_parent_run(client, tracker.experiment_id)
    if run_id is None:
        run = client.create_run(
            tracker.experiment_id,
            tags={"vtd.command": "report", "sweep_file": sweep.path.name},
            run_name="report",
        )
        run_id = run.info.run_id
        client.set_terminated(run_id, "FINISHED")
    client.log_artifact(run_id, str(files.report), artifact_path=ARTIFACT_DIR)
    for path in files.tables.values():
        client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_DIR)
    for path in files.plots.values():
        client.log_artifact(run_id, str(path), artifact_path=f"{ARTIFACT_DIR}/{PLOTS_DIR}")
    client.set_tag(run_id, "report", f"{ARTIFACT_DIR}/{REPORT_NAME}")
    client.set_tag(run_id, "report_written", time.strftime("%Y-%m-%d %H:%M:%S"))
    return run_id
