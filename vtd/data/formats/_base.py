"""The reader interface that every annotation format implements, and what readers return.

A format is one module with one `AnnotationReader` subclass, listed in `_formats.READERS`;
nothing else in the package knows which formats exist. A reader says whether a file's first
line is its header, or a data line of its format (for detection, `format: auto`), and turns
each data line into an `AnnotationRow`, raising `RowError` with a reason (and the kind of bad
frame it is) when the line cannot be used. Where the error goes (stop, or skip and count) is
decided by the index, not by the reader.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

# Both published formats share these columns, in this order, after the frame name.
NUMERIC_COLUMNS = ("xmin", "ymin", "xmax", "ymax", "gazex", "gazey")


MALFORMED = "malformed lines"


class RowError(ValueError):
    """One annotation line cannot be used; the message says why (the caller adds file and line).

    `kind` names the sort of bad frame in counts of skipped frames ("malformed lines",
    "no head detected").
    """

    def __init__(self, message: str, kind: str = MALFORMED) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class AnnotationRow:
    """One annotated frame as written in the file: pixel head box and gaze (-1, -1: out)."""

    line: int
    frame: str
    box: tuple[float, float, float, float]
    gaze: tuple[float, float]


class AnnotationReader(ABC):
    """One annotation format: recognise its header or data lines, and parse its data lines."""

    name: ClassVar[str]

    def is_header(self, first_fields: list[str]) -> bool:
        """Whether a first line splitting into `first_fields` is this format's header."""
        return False

    @abstractmethod
    def claims(self, first_fields: list[str]) -> bool:
        """Whether a headerless file whose first line splits into `first_fields` looks like
        this format (asked only when detecting, in the order of `_formats.READERS`)."""

    @abstractmethod
    def parse(self, fields: list[str], line: int) -> AnnotationRow:
        """Parse one data line's fields, raising `RowError` when they are malformed."""


def parse_number(text: str, column: str) -> float:
    """A finite float from one field, or a `RowError` naming the column and the text."""
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(f"column {column}: {text!r} is not a finite number")
    return value


def parse_frame_row(fields: list[str], line: int, columns: tuple[str, ...]) -> AnnotationRow:
    """The shared layout: a frame name, then `xmin ymin xmax ymax gazex gazey` in pixels.

    `columns` names the seven columns as the format calls them, for error messages.
    """
    if len(fields) != len(columns):
        raise RowError(
            f"expected {len(columns)} comma-separated columns ({','.join(columns)}), "
            f"found {len(fields)}"
        )
    frame = fields[0]
    if not frame:
        raise RowError(f"column {columns[0]}: empty frame name")
    x0, y0, x1, y1, gaze_x, gaze_y = (
        parse_number(text, column) for text, column in zip(fields[1:], columns[1:], strict=True)
    )
    return AnnotationRow(line=line, frame=frame, box=(x0, y0, x1, y1), gaze=(gaze_x, gaze_y))


def header_words(fields: list[str]) -> tuple[str, ...]:
    """A header line's column names, lower case, whether separated by commas or spaces."""
    return tuple(word.lower() for field in fields for word in field.split())


def looks_numeric(text: str) -> bool:
    """Whether a field parses as a float (nan included: a NaN line is data, just bad data)."""
    try:
        float(text)
    except ValueError:
        return False
    return True
