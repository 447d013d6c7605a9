"""Figures of a study: the grid of per-epoch curves, heatmaps per cell, Optuna's own views.

- `grid_figure`: rows x columns of cells (batch size x chunk size unless the sweep file's
  `report:` says otherwise); in each cell one line per `lines` value (initial weights), the
  mean over repeats with a min-max band; out-of-memory cells hatched and labelled with what
  triggered it, failed cells with the error, cells not run yet saying so: never blank.
  `classify_cells` is what decides how each cell is drawn (and what tests check).
- `heatmap_figure`: AUC and distance per cell at each repeat's selected epoch (chosen on
  the objective's split, as in the report's configurations table: test metrics are never
  selected on test unless the objective is), one panel per line, annotated with mean and
  standard deviation over repeats; out-of-memory cells hatched.
- `optuna_views`: optimisation history, intermediate values and parameter importances, drawn
  by `optuna.visualization.matplotlib`, where they add to the above (`optuna_views_for`).

Our figures are `matplotlib.figure.Figure` objects on an Agg canvas: pyplot's global state
(current figure, backend) is never used, so plots can be made in any process, with or
without a display. Optuna's views go through pyplot and set a style sheet: they are drawn
inside `matplotlib.rc_context` (the style is undone), closed once saved, and only Optuna's
ExperimentalWarning is silenced.
"""

from __future__ import annotations

import logging
import textwrap
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from vtd.evaluate.names import HIGHER_IS_BETTER, SPLIT_NAMES
from vtd.sweep.reporting._tables import (
    WITH_CURVES,
    Spread,
    StudyTables,
    failure_figure,
    out_of_memory_figure,
    ran_first,
    selection_text,
)

logger = logging.getLogger(__name__)

CellKind = Literal["curves", "out_of_memory", "failed", "not_run"]
METRIC_NAMES = {"auc": "AUC", "dist": "distance"}
METRIC_UNITS = {"auc": "AUC", "dist": "distance (normalised image units)"}
OPTUNA_VIEWS = ("history", "intermediate", "importance")
# Parameter importances mean little with fewer complete trials than this.
MIN_TRIALS_FOR_IMPORTANCE = 10
_OOM_FACE = "#f2f2f2"
_FAILED_FACE = "#fbe3e3"
_NOT_RUN_FACE = "#fafafa"
_HATCH = "///"
_DPI = 110
_CELL_TEXT_WIDTH = 28
_NOTE_WIDTH = 46


def setting_name(name: str) -> str:
    """`data.cross_validation.fold` -> `fold`, `batch_size` -> `batch size`."""
    return name.rsplit(".", 1)[-1].replace("_", " ")


def value_text(value: Any) -> str:
    """A setting's value, short: numbers as %g, checkpoint paths by their file name."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(Path(value).name) if isinstance(value, str) and "/" in value else str(value)


@dataclass(frozen=True)
class GridLayout:
    """Which setting is the rows, the columns and the lines, and their values in order."""

    rows: str
    columns: str
    lines: str
    others: tuple[str, ...]
    row_values: tuple[Any, ...]
    column_values: tuple[Any, ...]
    line_keys: tuple[tuple[Any, ...], ...]

    @classmethod
    def of(cls, tables: StudyTables) -> GridLayout:
        report = tables.sweep.file.report
        rows, columns, lines = report.rows, report.columns, report.lines
        trials = tables.trials
        # Searched settings that are none of the three, where they vary, tell lines apart.
        others = tuple(
            name
            for name in tables.settings
            if name not in (rows, columns, lines) and len(trials) and trials[name].nunique() > 1
        )
        keys: list[tuple[Any, ...]] = []
        for line in tables.values_of(lines):
            if not others:
                keys.append((line,))
                continue
            mine = trials[trials[lines] == line]
            combos = {tuple(trial[name] for name in others) for _, trial in mine.iterrows()}
            keys.extend(
                (line, *combo) for combo in sorted(combos, key=lambda c: tuple(map(_sort_text, c)))
            )
        return cls(
            rows=rows,
            columns=columns,
            lines=lines,
            others=others,
            row_values=tables.values_of(rows),
            column_values=tables.values_of(columns),
            line_keys=tuple(keys),
        )

    def line_key(self, trial: pd.Series | dict[str, Any]) -> tuple[Any, ...]:
        return (trial[self.lines], *(trial[name] for name in self.others))

    def on_line(self, trials: pd.DataFrame, key: tuple[Any, ...]) -> pd.DataFrame:
        """The trials drawn as line `key` (a mask, not a list: an empty list would select
        no columns of an empty cell)."""
        drawn = [self.line_key(trial) == key for trial in trials.to_dict("records")]
        return trials[pd.Series(drawn, index=trials.index, dtype=bool)]

    def line_label(self, key: tuple[Any, ...]) -> str:
        extra = [
            f"{setting_name(name)}={value_text(value)}"
            for name, value in zip(self.others, key[1:], strict=True)
        ]
        return ", ".join([value_text(key[0]), *extra])

    def cell_title(self, row: Any, column: Any) -> str:
        return (
            f"{setting_name(self.rows)} {value_text(row)} · "
            f"{setting_name(self.columns)} {value_text(column)}"
        )


def _sort_text(value: Any) -> tuple[int, float, str]:
    return (0, float(value), "") if isinstance(value, int | float) else (1, 0.0, str(value))


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


def _cell_trials(tables: StudyTables, layout: GridLayout, row: Any, column: Any) -> pd.DataFrame:
    trials = tables.trials
    if trials.empty:
        return trials
    return trials[(trials[layout.rows] == row) & (trials[layout.columns] == column)]


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
            mine = _cell_trials(tables, layout, row, column)
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


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _colours(count: int) -> list[Any]:
    palette = matplotlib.colormaps["tab10"]
    return [palette(index % 10) for index in range(count)]


def _mark_empty(ax: Any, cell: GridCell) -> None:
    face = {"out_of_memory": _OOM_FACE, "failed": _FAILED_FACE}.get(cell.kind, _NOT_RUN_FACE)
    hatch = _HATCH if cell.kind == "out_of_memory" else None
    ax.add_patch(
        Rectangle(
            (0, 0),
            1,
            1,
            transform=ax.transAxes,
            facecolor=face,
            edgecolor="0.75",
            hatch=hatch,
            zorder=0,
        )
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
    figure = _new_figure(max(2.9 * ncols + 0.8, 6.0), 2.35 * nrows + 1.5)
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
            trials = _cell_trials(tables, layout, row, col)
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
        handles.append(
            Patch(facecolor=_OOM_FACE, edgecolor="0.5", hatch=_HATCH, label="out of memory")
        )
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
        f"{tables.sweep.study_name}: {SPLIT_NAMES[split]} {METRIC_NAMES[metric]} per epoch "
        f"(rows: {setting_name(layout.rows)}, columns: {setting_name(layout.columns)})",
        fontsize=10.5,
    )
    return figure


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
            trials = layout.on_line(_cell_trials(tables, layout, row, col), key)
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
    figure = _new_figure(width, 2 * (0.75 * nrows + 1.3) + 1.1)
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
                f"{METRIC_NAMES[metric]} · {setting_name(layout.lines)} {layout.line_label(key)}",
                fontsize=9,
            )
        if image is not None:
            bar = figure.colorbar(image, ax=list(axes[m]), shrink=0.9)
            unit = "\n(normalised image units)" if metric == "dist" else ""
            bar.set_label(
                f"{SPLIT_NAMES[split]} {METRIC_NAMES[metric]} at the selected epoch{unit}",
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
    if cell.kind == "out_of_memory":
        ax.add_patch(
            Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=_OOM_FACE, edgecolor="0.5", hatch=_HATCH)
        )
    elif cell.kind == "failed":
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=_FAILED_FACE, edgecolor="none"))
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


def save(figure: Figure, path: Path, *, tight: bool = False) -> Path:
    """Write `figure` as PNG; `tight` crops to what is drawn (for figures whose legends
    or labels reach past their edges, as Optuna's do)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight" if tight else None)
    return path


# --- Optuna's views ------------------------------------------------------------------------
def optuna_views_for(tables: StudyTables) -> tuple[str, ...]:
    """The Optuna views that add to the grid and heatmaps for this study.

    - history (the objective per trial and the best so far) and importance (which setting
      matters) for tpe / random studies, where trials are chosen by the sampler; importance
      needs two or more searched settings and `MIN_TRIALS_FOR_IMPORTANCE` complete trials;
    - intermediate values (the objective per epoch of every trial) when a pruner stops trials
      or the sampler is not a grid (a grid's curves are in the grid figure already).
    """
    sweep = tables.sweep
    sampled = sweep.file.sampler.name != "grid"
    complete = int((tables.trials["outcome"] == "complete").sum()) if len(tables.trials) else 0
    views = []
    if sampled and complete >= 2:
        views.append("history")
    if (sampled or sweep.file.pruner.name != "none") and complete + len(tables.epochs) > 0:
        views.append("intermediate")
    if sampled and len(sweep.space.names) >= 2 and complete >= MIN_TRIALS_FOR_IMPORTANCE:
        views.append("importance")
    return tuple(views)


def _optuna_drawers(study: Any, target_name: str) -> dict[str, Callable[[], Any]]:
    from optuna.visualization import matplotlib as views

    return {
        "history": lambda: views.plot_optimization_history(study, target_name=target_name),
        "intermediate": lambda: views.plot_intermediate_values(study),
        "importance": lambda: views.plot_param_importances(study, target_name=target_name),
    }


def optuna_views(
    tables: StudyTables, study: Any, folder: Path, which: Iterable[str]
) -> dict[str, Path]:
    """Draw Optuna's views `which` (those of `OPTUNA_VIEWS` that `optuna_views_for` picks)
    as PNGs under `folder`."""
    import optuna
    from matplotlib import pyplot

    objective = tables.sweep.file.objective
    target = f"{objective.reduce} {objective.split} {METRIC_NAMES[objective.metric]}"
    drawers = _optuna_drawers(study, target)
    written = {}
    for view in which:
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = drawers[view]()
            except (ValueError, RuntimeError) as error:
                # Optuna refuses some studies (e.g. importances of one distinct value).
                logger.warning("optuna %s view not drawn: %s", view, error)
                continue
            figure = axes.figure
            try:
                figure.set_size_inches(7.5, 4.5)
                figure.suptitle(f"study {tables.sweep.study_name}", x=0.99, ha="right")
                if view == "intermediate":
                    axes.set_xlabel("epoch")
                    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
                    axes.set_ylabel(f"{objective.split} {METRIC_NAMES[objective.metric]}")
                written[view] = save(figure, folder / f"optuna_{view}.png", tight=True)
            finally:
                pyplot.close(figure)
    return written
