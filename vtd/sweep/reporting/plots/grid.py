"""The grid figure: per-epoch curves of every cell, one line per `lines` value.

`classify_cells` decides how each cell is drawn (curves, out of memory, failed, not run yet:
never blank); `grid_figure` draws the mean over repeats with a min-max band.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from vtd.evaluate.names import HIGHER_IS_BETTER, METRIC_LABELS, SPLIT_NAMES
from vtd.sweep.reporting._tables import (
    WITH_CURVES,
    StudyTables,
    failure_figure,
    out_of_memory_figure,
    ran_first,
)
from vtd.sweep.reporting.plots.shared import (
    CELL_FILL,
    METRIC_UNITS,
    CellKind,
    GridLayout,
    cell_trials,
    new_figure,
    setting_name,
)

_NOT_RUN_FACE = "#fafafa"
_CELL_TEXT_WIDTH = 28
_NOTE_WIDTH = 46


@dataclass(frozen=True)
class GridCell:
    """How one cell of the grid is drawn, and why."""

    row: Any
    column: Any
    kind: CellKind
    text: str
    notes: tuple[str, ...]
    numbers: tuple[int, ...]
    out_of_memory: tuple[int, ...]
    failed: tuple[int, ...]


def _numbers(frame: pd.DataFrame, outcomes: Sequence[str]) -> tuple[int, ...]:
    return tuple(int(n) for n in frame.loc[frame["outcome"].isin(outcomes), "number"])


def _first_reason(frame: pd.DataFrame, outcomes: Sequence[str]) -> pd.Series:
    return ran_first(frame[frame["outcome"].isin(outcomes)])


def _line_note(layout: GridLayout, key: tuple[Any, ...], mine: pd.DataFrame) -> str | None:
    label = layout.line_label(key)
    counts = mine["outcome"].value_counts()
    total = len(mine)
    curves = int(sum(counts.get(outcome, 0) for outcome in WITH_CURVES))
    oom, failed = (
        int(counts.get("out_of_memory", 0)),
        int(counts.get("failed", 0) + counts.get("interrupted", 0)),
    )
    stopped = int(counts.get("stopped", 0))
    if curves == 0 and oom:
        figure = out_of_memory_figure(_first_reason(mine, ["out_of_memory"]))
        return f"{label}: out of memory ({figure})"
    if curves == 0 and failed:
        reason = failure_figure(_first_reason(mine, ["failed", "interrupted"]), 40)
        return f"{label}: failed ({reason})"
    parts = []
    if oom:
        parts.append(f"{oom} of {total} out of memory")
    if failed:
        parts.append(f"{failed} of {total} failed")
    if stopped:
        parts.append(f"{stopped} of {total} stopped by the pruner")
    return f"{label}: {', '.join(parts)}" if parts else None


def classify_cells(tables: StudyTables, layout: GridLayout) -> dict[tuple[Any, Any], GridCell]:
    """Every cell of the grid: curves, out of memory, failed or not run (never blank).

    A cell with at least one trial that trained (complete, or stopped by the pruner) shows
    curves, with a note for each line that did not train; otherwise it is out of memory when
    any of its trials ran out of memory (or was dominated by one that did), failed when any
    failed, and not run when none has finished.
    """
    cells = {}
    for row in layout.row_values:
        for column in layout.column_values:
            mine = cell_trials(tables, layout, row, column)
            curves = _numbers(mine, WITH_CURVES)
            oom = _numbers(mine, ("out_of_memory",))
            failed = _numbers(mine, ("failed", "interrupted"))
            notes: list[str] = []
            if curves:
                kind: CellKind = "curves"
                text = ""
                for key in layout.line_keys:
                    line = layout.on_line(mine, key)
                    note = _line_note(layout, key, line) if len(line) else None
                    if note:
                        notes.append(note)
            elif oom:
                kind = "out_of_memory"
                text = "out of memory\n" + out_of_memory_figure(
                    _first_reason(mine, ["out_of_memory"])
                )
            elif failed:
                kind = "failed"
                first = _first_reason(mine, ["failed", "interrupted"])
                if first["outcome"] == "interrupted":
                    text = "interrupted\nruns again with the next run"
                else:
                    text = "failed\n" + textwrap.fill(failure_figure(first), _CELL_TEXT_WIDTH)
            else:
                kind = "not_run"
                text = "not run yet" if len(mine) else "no trial"
            if kind != "curves" and (oom and failed):
                notes.append(f"also {len(failed)} failed")
            cells[(row, column)] = GridCell(
                row=row,
                column=column,
                kind=kind,
                text=text,
                notes=tuple(notes),
                numbers=tuple(int(n) for n in mine["number"]) if len(mine) else (),
                out_of_memory=oom,
                failed=failed,
            )
    return cells


def _notes_text(notes: Sequence[str], width: int, most: int = 2) -> str:
    """Notes under a cell's title: each wrapped to two lines at most, `most` notes shown."""
    lines = []
    for note in notes[:most]:
        lines.append(textwrap.fill(textwrap.shorten(note, 2 * width, placeholder="…"), width))
    if len(notes) > most:
        lines.append(f"+{len(notes) - most} more")
    return "\n".join(lines)


def _colours(count: int) -> list[Any]:
    palette = matplotlib.colormaps["tab10"]
    return [palette(index % 10) for index in range(count)]


def _mark_empty(ax: Any, cell: GridCell) -> None:
    fill = CELL_FILL.get(cell.kind, {"facecolor": _NOT_RUN_FACE})
    ax.add_patch(
        Rectangle((0, 0), 1, 1, transform=ax.transAxes, edgecolor="0.75", zorder=0, **fill)
    )
    colour = {"out_of_memory": "0.15", "failed": "#9b1c1c"}.get(cell.kind, "0.45")
    ax.text(
        0.5,
        0.5,
        cell.text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=8.5,
        color=colour,
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 3},
    )


def _aggregate(curves: pd.DataFrame, column: str) -> pd.DataFrame:
    values = curves[["epoch", column]].dropna()
    return values.groupby("epoch")[column].agg(["mean", "min", "max", "count"]).reset_index()


def grid_figure(
    tables: StudyTables,
    layout: GridLayout,
    cells: dict[tuple[Any, Any], GridCell],
    *,
    split: str = "val",
    metric: str = "auc",
) -> Figure:
    """Per-epoch `split` `metric` in every cell, one line per line key, shared axes."""
    column = f"{split}_{metric}"
    nrows, ncols = len(layout.row_values), len(layout.column_values)
    figure = new_figure(max(2.9 * ncols + 0.8, 6.0), 2.35 * nrows + 1.5)
    axes = figure.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    colours = dict(zip(layout.line_keys, _colours(len(layout.line_keys)), strict=True))
    most_repeats = 0
    epochs_seen: set[int] = set()
    for i, row in enumerate(layout.row_values):
        for j, col in enumerate(layout.column_values):
            ax = axes[i][j]
            cell = cells[(row, col)]
            title = layout.cell_title(row, col)
            if cell.notes:
                title += "\n" + _notes_text(cell.notes, width=_NOTE_WIDTH)
            ax.set_title(title, fontsize=8.5, color="0.1" if not cell.notes else "#7a3b00")
            ax.grid(True, color="0.9", linewidth=0.6)
            if cell.kind != "curves":
                _mark_empty(ax, cell)
                continue
            trials = cell_trials(tables, layout, row, col)
            trials = trials[trials["outcome"].isin(WITH_CURVES)]
            for key in layout.line_keys:
                curves = tables.curves(layout.on_line(trials, key)["number"].tolist())
                if curves.empty or column not in curves:
                    continue
                summary = _aggregate(curves, column)
                if summary.empty:
                    continue
                epochs_seen.update(int(e) for e in summary["epoch"])
                most_repeats = max(most_repeats, int(summary["count"].max()))
                colour = colours[key]
                if summary["count"].max() > 1:
                    ax.fill_between(
                        summary["epoch"],
                        summary["min"],
                        summary["max"],
                        color=colour,
                        alpha=0.18,
                        linewidth=0,
                    )
                ax.plot(
                    summary["epoch"],
                    summary["mean"],
                    color=colour,
                    marker="o",
                    markersize=3.5,
                    linewidth=1.6,
                )
    for ax in axes[-1]:
        ax.set_xlabel("epoch")
    if epochs_seen and max(epochs_seen) - min(epochs_seen) < 16:
        axes[0][0].set_xticks(range(min(epochs_seen), max(epochs_seen) + 1))  # shared by all
    else:
        axes[0][0].xaxis.set_major_locator(MaxNLocator(integer=True))
    better = "higher" if HIGHER_IS_BETTER[metric] else "lower"
    figure.supylabel(
        f"{SPLIT_NAMES[split]} {METRIC_UNITS[metric]}, {better} is better", fontsize=9.5
    )
    if epochs_seen:
        low, high = min(epochs_seen), max(epochs_seen)
        axes[0][0].set_xlim(low - 0.3, high + 0.3 if high > low else low + 0.3)
    handles: list[Any] = [
        Line2D([], [], color=colours[key], marker="o", markersize=3.5, label=layout.line_label(key))
        for key in layout.line_keys
    ]
    if most_repeats > 1:
        handles.append(
            Patch(
                facecolor="0.6",
                alpha=0.35,
                label=f"band: min-max over repeats (n ≤ {most_repeats})",
            )
        )
    if any(cell.kind == "out_of_memory" for cell in cells.values()):
        handles.append(Patch(edgecolor="0.5", label="out of memory", **CELL_FILL["out_of_memory"]))
    figure.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 4),
        frameon=False,
        fontsize=8.5,
        title=f"{setting_name(layout.lines)} (line: mean over repeats)",
        title_fontsize=8.5,
    )
    figure.suptitle(
        f"{tables.sweep.study_name}: {SPLIT_NAMES[split]} {METRIC_LABELS[metric]} per epoch "
        f"(rows: {setting_name(layout.rows)}, columns: {setting_name(layout.columns)})",
        fontsize=10.5,
    )
    return figure
