"""How a planned clip is written: its annotation text (ObjectAttention's, or the lab's own
lines) and its frames (copied or linked)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from vtd.prepare.options import HEADER, LAB_HEADER, LAB_SEPARATOR, Row


def number(value: float) -> str:
    """Pixels with at most two decimals and no trailing zeros: 45, 12.5, 24.65."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def annotation_text(names: list[str], rows: list[Row]) -> str:
    lines = [HEADER]
    for name, row in zip(names, rows, strict=True):
        lines.append(",".join([name, *map(number, row.box), *map(number, row.gaze)]))
    return "\n".join(lines) + "\n"


def lab_pixel(value: float) -> str:
    """A head box value as the lab wrote it: integers as integers (labelImg's, or floored)."""
    return str(int(value)) if float(value).is_integer() else number(value)


def lab_annotation_text(names: list[str], rows: list[Row]) -> str:
    """The lab's lines: `00012, 206, 24, 300, 144, 350.5, 200.0` (gaze as Python writes floats)."""
    lines = [LAB_HEADER]
    for name, row in zip(names, rows, strict=True):
        fields = [name, *map(lab_pixel, row.box), *(repr(float(v)) for v in row.gaze)]
        lines.append(LAB_SEPARATOR.join(fields))
    return "\n".join(lines) + "\n"


def place(source: Path, destination: Path, link: str) -> None:
    if destination.exists() or destination.is_symlink():
        destination.unlink()
    if link == "copy":
        shutil.copyfile(source, destination)
    elif link == "hardlink":
        os.link(source, destination)
    else:
        destination.symlink_to(source.resolve())
