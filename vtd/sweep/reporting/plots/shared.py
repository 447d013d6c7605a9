"""What the figures share: setting names and metric units, the grid's layout, a figure, saving it.

`GridLayout` says which setting is the rows, the columns and the lines of the grid and the
heatmaps; `new_figure` makes a figure on an Agg canvas (pyplot's global state is never used);
`save` writes it as PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vtd.sweep.reporting._tables import StudyTables

CellKind = Literal["curves", "out_of_memory", "failed", "not_run"]
METRIC_UNITS = {"auc": "AUC", "dist": "distance (normalised image units)"}
# How a cell without curves is filled, in the grid and the heatmaps: out of memory hatched,
# failed tinted (a cell not run is left plain).
CELL_FILL: dict[CellKind, dict[str, str]] = {
    "out_of_memory": {"facecolor": "#f2f2f2", "hatch": "///"},
    "failed": {"facecolor": "#fbe3e3"},
}
_DPI = 110


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


def cell_trials(tables: StudyTables, layout: GridLayout, row: Any, column: Any) -> pd.DataFrame:
    trials = tables.trials
    if trials.empty:
        return trials
    return trials[(trials[layout.rows] == row) & (trials[layout.columns] == column)]


def new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path, *, tight: bool = False) -> Path:
    """Write `figure` as PNG; `tight` crops to what is drawn (for figures whose legends
    or labels reach past their edges, as Optuna's do)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight" if tight else None)
    return path
