"""The report's "published (lab) vs this study" table: a sweep file's `report.published`
figures beside this study's own, configuration by configuration.

A published row names settings (`initial_weights` matched by file name) and a stage: the
initial weights before training (our epoch 0, `initial_<split>_<metric>`), or the weights
after training (our last epoch, `final_<split>_<metric>`, as the lab read its epoch-N
weights). Rows of the same settings and stage are one line: the lab's runs listed, ours as
mean ± sample standard deviation over the complete repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from vtd.evaluate.names import SPLIT_NAMES, SPLIT_PREFIXES
from vtd.sweep.plan._report_config import PublishedRow
from vtd.sweep.reporting._tables import DIGITS, Spread, StudyTables, base_setting
from vtd.sweep.reporting.plots.shared import setting_name, value_text

PUBLISHED_DIGITS = 4
_STAGE = {"initial": "initial weights, not trained", "trained": "after training"}


def _same(name: str, published: Any, ours: Any) -> bool:
    if name == "initial_weights":
        return Path(str(published)).name == Path(str(ours)).name
    if published == ours:
        return True
    return str(published) == str(ours)


def _matching(tables: StudyTables, row: PublishedRow) -> pd.DataFrame:
    trials = tables.trials
    if trials.empty:
        return trials
    keep = pd.Series(True, index=trials.index)
    for name, value in row.settings.items():
        if name in trials.columns:
            ours = trials[name]
        else:
            ours = pd.Series([base_setting(tables.sweep, name)] * len(trials), index=trials.index)
        keep &= ours.map(lambda mine, name=name, value=value: _same(name, value, mine))
    return trials[keep]


def _label(row: PublishedRow) -> str:
    if not row.settings:
        return "every configuration"
    return ", ".join(f"{setting_name(k)} {value_text(v)}" for k, v in row.settings.items())


def _published_text(rows: list[PublishedRow], metric: str) -> str:
    values = [getattr(row, metric) for row in rows if getattr(row, metric) is not None]
    if not values:
        return "; ".join(dict.fromkeys(row.note for row in rows if row.note)) or "—"
    # as published (the lab gave 4 decimals); their mean at the report's precision
    listed = ", ".join(f"{value:.{PUBLISHED_DIGITS}f}" for value in values)
    if len(values) == 1:
        return listed
    return f"{listed} (mean {sum(values) / len(values):.{DIGITS}f})"


def published_table(tables: StudyTables, state_text: Callable[[pd.DataFrame], str]) -> pd.DataFrame:
    """One row per (settings, stage) of the published figures: theirs and ours
    (`state_text` words the outcome of a configuration without figures)."""
    published = tables.sweep.file.report.published
    if published is None:
        return pd.DataFrame()
    prefix = SPLIT_PREFIXES[published.split]
    groups: dict[tuple[str, str], list[PublishedRow]] = {}
    for row in published.rows:
        groups.setdefault((repr(sorted(row.settings.items())), row.stage), []).append(row)
    records = []
    for rows in groups.values():
        first = rows[0]
        mine = _matching(tables, first)
        if first.stage == "initial":
            measured = mine[mine["outcome"].isin(("complete", "stopped"))] if len(mine) else mine
            column = f"initial_{prefix}_{{metric}}"
        else:
            measured = mine[mine["outcome"] == "complete"] if len(mine) else mine
            column = f"final_{prefix}_{{metric}}"
        auc = Spread.of(measured, column.format(metric="auc"))
        dist = Spread.of(measured, column.format(metric="dist"))
        if auc.count or dist.count:
            state = f"n={max(auc.count, dist.count)}"
        elif len(mine):
            state = state_text(mine)
        else:
            state = "no such configuration in this study"
        records.append(
            {
                "configuration": _label(first),
                "stage": _STAGE[first.stage],
                "published_auc": _published_text(rows, "auc"),
                "published_dist": _published_text(rows, "dist"),
                "auc_mean": auc.mean,
                "auc_std": auc.std,
                "dist_mean": dist.mean,
                "dist_std": dist.std,
                "auc": auc.text(),
                "dist": dist.text(),
                "this_study": state,
            }
        )
    return pd.DataFrame(records)


def published_section(
    tables: StudyTables, table: pd.DataFrame
) -> tuple[list[str], list[str], list[list[str]]] | None:
    """The report section's introduction, table header and rows; None when the sweep file
    names no published figures."""
    published = tables.sweep.file.report.published
    if published is None:
        return None
    split = SPLIT_NAMES[SPLIT_PREFIXES[published.split]]
    intro = [
        "## Published (lab) vs this study",
        "",
        f"Published: {published.source}. This study: {split} AUC / distance of the initial "
        "weights (epoch 0) or of the last epoch, mean ± sample standard deviation over the "
        "complete repeats.",
        "",
    ]
    header = [
        "configuration",
        "weights",
        f"published {split} AUC",
        "published dist",
        "this study AUC",
        "this study dist",
        "this study",
    ]
    keys = ("configuration", "stage", "published_auc", "published_dist", "auc", "dist")
    rows = [[*(row[key] for key in keys), row["this_study"]] for row in table.to_dict("records")]
    return intro, header, rows
