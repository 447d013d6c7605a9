"""`vtd-sweep eval` and `vtd-sweep prepare`: tools beside the sweep.

`evaluate`: a checkpoint, or every checkpoint of a folder, on data folders or a sweep file's
split, as a table (and CSV). `prepare_folders`: the lab's recordings (labelImg XML, OpenPose
JSON) written as ObjectAttention annotation files. Bad input is a `UsageError` (exit code 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from vtd.sweep.commands.common import UsageError


def _evaluation_clips(
    sweep_file: Path | None, split: str, data: Sequence[Path] | None, subset: str
) -> list:
    from vtd.data import SourceSpec, SplitSpec, build_index, load_splits
    from vtd.data.splits import select_clips

    if sweep_file is not None:
        from vtd.sweep.plan.config import load_sweep

        sweep = load_sweep(sweep_file)
        if sweep.file.demo is not None:
            from vtd.demo.generate import ensure_demo

            ensure_demo(sweep.cache_dir, sweep.file.demo)
        splits = load_splits(sweep.base.data, sweep.base.data_dir)
        clips = getattr(splits, split)
        if not clips:
            raise UsageError(f"{sweep_file}: the sweep's data has no {split} clips")
        return clips
    sources = [SourceSpec(root=path) for path in data]
    clips = build_index(sources, Path.cwd())
    return select_clips(clips, SplitSpec(subsets=(subset,)), "--subset")


def evaluate(
    weights: Path,
    *,
    data: Sequence[Path] | None = None,
    subset: str = "test",
    sweep: Path | None = None,
    split: str = "test",
    model: str | None = None,
    batch_size: int = 4,
    chunk_size: int = 3,
    device: str = "auto",
    csv: Path | None = None,
) -> int:
    from vtd.data import DataError
    from vtd.evaluate.checkpoints import evaluate_checkpoints
    from vtd.model import CheckpointError, ModelConfig
    from vtd.sweep.reporting.console import terminal

    if (sweep is None) == (not data):
        raise UsageError("give the data to evaluate on: --data FOLDER ... or --sweep FILE")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        clips = _evaluation_clips(sweep, split, data, subset)
        rows = evaluate_checkpoints(
            weights,
            clips,
            model=ModelConfig(variant=model) if model else None,
            batch_size=batch_size,
            chunk_size=chunk_size,
            device=device,
        )
    except (DataError, CheckpointError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    console = terminal()
    table = Table(title=f"{weights}: {len(clips)} clips", title_justify="left")
    for column in rows.columns:
        table.add_column(str(column), justify="left" if column == "checkpoint" else "right")
    for row in rows.itertuples(index=False):
        table.add_row(
            *(f"{value:.4f}" if isinstance(value, float) else str(value) for value in row)
        )
    console.print(table)
    if csv is not None:
        rows.to_csv(csv, index=False)
        console.print(f"written to {csv}")
    return 0


def prepare_folders(source: Path, output: Path, **flags: object) -> int:
    """`flags`: `PrepareOptions`' fields as the command line gave them, None where not given."""
    from pydantic import ValidationError

    from vtd.data.errors import DataError
    from vtd.prepare.convert import prepare
    from vtd.prepare.options import PrepareOptions

    try:
        # Only the flags given: the lab layout rejects --target, --person, ... when present.
        options = PrepareOptions(
            **{name: value for name, value in flags.items() if value is not None}
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UsageError(f"{where + ': ' if where else ''}{first['msg']}") from None
    try:
        report = prepare(source, output, options)
    except DataError as error:
        raise UsageError(str(error)) from None
    Console().print(
        f"wrote {len(report.clips)} clip(s), {report.frames_written} frame(s) to {output}"
        + (f"; skipped {len(report.skipped)} bad frame(s)" if report.skipped else "")
    )
    return 0
