"""`vtd-sweep data`: what the sweep's data is, per split and source, before any trial."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vtd.sweep.commands.common import UsageError

_SKIPPED_SHOWN = 10


def data(file: Path, *, csv: bool = False) -> int:
    import pandas as pd

    from vtd.data.errors import DataError
    from vtd.data.summary import summarize
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.plan.datacheck import check_sweep_data

    sweep = load_sweep(file)
    try:
        checked = check_sweep_data(sweep)
        parts = []
        for item in checked:
            rows = summarize(item.index, item.splits, item.variant.config.group_by)
            if len(checked) > 1:
                rows.insert(0, "variant", item.variant.label)
            parts.append(rows)
    except DataError as error:
        raise UsageError(f"data: {error}") from None
    table = pd.concat(parts, ignore_index=True)
    if csv:
        sys.stdout.write(table.to_csv(index=False))
        return 0
    console = Console()
    # One table per data variant, one column per (split, source): rows are the quantities.
    for item, rows in zip(checked, parts, strict=True):
        title = f"{file}" + (f" ({item.variant.label})" if item.variant.label else "")
        shown = Table(title=title, title_justify="left")
        shown.add_column("")
        for split, source in zip(rows["split"], rows["source"], strict=True):
            shown.add_column(f"{split}\n{source}")
        for column in rows.columns:
            if column in ("variant", "split", "source"):
                continue
            values = rows[column]
            cells = [f"{value:.1%}" for value in values] if column == "in_frame" else values
            shown.add_row(column.replace("_", " "), *(str(value) for value in cells))
        console.print(shown)
    skipped = list({id(item.index): item.index for item in checked}.values())
    for index in skipped:
        for frame in index.skipped[:_SKIPPED_SHOWN]:
            where = f"{frame.annotation_file}:{frame.line}" if frame.line else frame.annotation_file
            console.print(f"skipped {where}: {frame.reason}", markup=False, soft_wrap=True)
        if len(index.skipped) > _SKIPPED_SHOWN:
            console.print(f"... and {len(index.skipped) - _SKIPPED_SHOWN} more skipped frames")
    return 0
