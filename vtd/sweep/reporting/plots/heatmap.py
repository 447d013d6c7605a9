"""Heatmaps: AUC and distance per cell at each repeat's selected epoch, a panel per line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vtd.evaluate.names import HIGHER_IS_BETTER, METRIC_LABELS, SPLIT_NAMES
from vtd.sweep.reporting._tables import Spread, StudyTables
from vtd.sweep.reporting.plots.shared import (
    CELL_FILL,
    CellKind,
    GridLayout,
    cell_trials,
    new_figure,
    setting_name,
    value_text,
)
from vtd.sweep.reporting.trials import selection_text


@dataclass(frozen=True)
class HeatmapCell:
    """One (cell, line) of a heatmap: its mean value, spread and what it says instead."""

    kind: CellKind
    mean: float | None
    std: float | None
    count: int
    interrupted: bool = False
    total: int = 0
    injected: bool = False  # what it says instead comes from an injected fault


def _injected(trials: pd.DataFrame, outcomes: Sequence[str]) -> bool:
    mine = trials[trials["outcome"].isin(outcomes)]
    return "injected" in mine and bool(mine["injected"].fillna(False).astype(bool).all())


def heatmap_values(
    tables: StudyTables, layout: GridLayout, key: tuple[Any, ...], split: str, metric: str
) -> dict[tuple[Any, Any], HeatmapCell]:
    """Per cell, for one line: the mean over the complete trials of the metric at each
    trial's selected epoch (`sel_<split>_<metric>`, see `vtd.sweep.reporting._tables`)."""
    column = f"sel_{split}_{metric}"
    values = {}
    for row in layout.row_values:
        for col in layout.column_values:
            trials = layout.on_line(cell_trials(tables, layout, row, col), key)
            spread = Spread.of(trials[trials["outcome"] == "complete"], column)
            if spread.count:
                values[(row, col)] = HeatmapCell(
                    "curves", spread.mean, spread.std, spread.count, total=len(trials)
                )
            elif (trials["outcome"] == "out_of_memory").any():
                values[(row, col)] = HeatmapCell(
                    "out_of_memory",
                    None,
                    None,
                    0,
                    injected=_injected(trials, ("out_of_memory",)),
                )
            elif trials["outcome"].isin(("failed", "interrupted")).any():
                only_interrupted = bool((trials["outcome"] != "failed").all())
                values[(row, col)] = HeatmapCell(
                    "failed",
                    None,
                    None,
                    0,
                    only_interrupted,
                    injected=_injected(trials, ("failed",)),
                )
            else:
                values[(row, col)] = HeatmapCell("not_run", None, None, 0)
    return values


def _text_colour(colormap: Colormap, fraction: float) -> str:
    red, green, blue, _ = colormap(fraction)
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"


def heatmap_figure(tables: StudyTables, layout: GridLayout, *, split: str = "val") -> Figure:
    """AUC and distance per cell at the selected epoch: a row per metric, a panel per line."""
    nrows, ncols = len(layout.row_values), len(layout.column_values)
    panels = max(len(layout.line_keys), 1)
    width = max(panels * (1.1 * ncols + 1.6) + 1.2, 6.5)
    figure = new_figure(width, 2 * (0.75 * nrows + 1.3) + 1.1)
    axes = figure.subplots(2, panels, squeeze=False)
    for m, metric in enumerate(("auc", "dist")):
        grids = {
            key: heatmap_values(tables, layout, key, split, metric) for key in layout.line_keys
        }
        numbers = [
            cell.mean for grid in grids.values() for cell in grid.values() if cell.mean is not None
        ]
        low, high = (min(numbers), max(numbers)) if numbers else (0.0, 1.0)
        if high - low < 1e-9:
            low, high = low - 0.01, high + 0.01
        colormap = matplotlib.colormaps[
            "viridis" if HIGHER_IS_BETTER[metric] else "viridis_r"
        ].with_extremes(bad="white")
        image = None
        for p, key in enumerate(layout.line_keys):
            ax = axes[m][p]
            grid = grids[key]
            matrix = np.full((nrows, ncols), np.nan)
            for i, row in enumerate(layout.row_values):
                for j, col in enumerate(layout.column_values):
                    cell = grid[(row, col)]
                    if cell.mean is not None:
                        matrix[i, j] = cell.mean
            image = ax.imshow(
                np.ma.masked_invalid(matrix), cmap=colormap, vmin=low, vmax=high, aspect="auto"
            )
            for i, row in enumerate(layout.row_values):
                for j, col in enumerate(layout.column_values):
                    _annotate_heat(ax, grid[(row, col)], i, j, colormap, low, high)
            ax.set_xticks(range(ncols), [value_text(v) for v in layout.column_values])
            ax.set_yticks(range(nrows), [value_text(v) for v in layout.row_values])
            ax.set_xlabel(setting_name(layout.columns))
            ax.set_ylabel(setting_name(layout.rows))
            ax.set_title(
                f"{METRIC_LABELS[metric]} · {setting_name(layout.lines)} {layout.line_label(key)}",
                fontsize=9,
            )
        if image is not None:
            bar = figure.colorbar(image, ax=list(axes[m]), shrink=0.9)
            unit = "\n(normalised image units)" if metric == "dist" else ""
            bar.set_label(
                f"{SPLIT_NAMES[split]} {METRIC_LABELS[metric]} at the selected epoch{unit}",
                fontsize=8.5,
            )
    figure.suptitle(
        f"{tables.sweep.study_name}: {SPLIT_NAMES[split]} AUC and distance per cell\n"
        f"at each repeat's selected epoch: {selection_text(tables.sweep, tables.reduce)}\n"
        "(mean ± std over complete repeats; hatched: out of memory)",
        fontsize=10,
    )
    return figure


def _annotate_heat(
    ax: Any, cell: HeatmapCell, i: int, j: int, colormap: Colormap, low: float, high: float
) -> None:
    if cell.kind == "curves" and cell.mean is not None:
        text = f"{cell.mean:.3f}"
        if cell.std is not None:
            text += f"\n±{cell.std:.3f}"
        if cell.total > cell.count:
            text += f"\n({cell.count} of {cell.total} seeds)"
        colour = _text_colour(colormap, (cell.mean - low) / (high - low))
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
        return
    if cell.kind in CELL_FILL:
        edge = "0.5" if cell.kind == "out_of_memory" else "none"
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, edgecolor=edge, **CELL_FILL[cell.kind]))
    failed = "interrupted" if cell.interrupted else "failed"
    label = {"out_of_memory": "out of\nmemory", "failed": failed}.get(cell.kind, "not run")
    if cell.injected:
        label += "\n(injected)"
    ax.text(
        j,
        i,
        label,
        ha="center",
        va="center",
        fontsize=7.5,
        color="0.2",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
    )
