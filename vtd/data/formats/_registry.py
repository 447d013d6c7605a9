"""The known annotation formats, and how a file's format is decided from its first line.

Adding a format: write a module with an `AnnotationReader` subclass and list an instance here.
With `format: auto` headers are looked for first, so that a header is never mistaken for a
malformed data line; then the readers, in this order, judge a headerless first line. An
explicit format never guesses: its header is skipped when the file has one, and otherwise the
first line is data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vtd.data.errors import DataError
from vtd.data.formats._base import AnnotationReader
from vtd.data.formats._oa import ObjectAttentionReader
from vtd.data.formats._vat import VideoAttentionTargetReader

READERS: tuple[AnnotationReader, ...] = (ObjectAttentionReader(), VideoAttentionTargetReader())
FORMAT_NAMES: tuple[str, ...] = tuple(reader.name for reader in READERS)
AUTO = "auto"


@dataclass(frozen=True)
class FileFormat:
    """How one annotation file is read: by which reader, and whether line 1 is a header."""

    reader: AnnotationReader
    has_header: bool

    @property
    def label(self) -> str:
        """E.g. "objectattention" or "objectattention (no header)", for summaries."""
        return self.reader.name if self.has_header else f"{self.reader.name} (no header)"


def _reader_named(name: str) -> AnnotationReader:
    for reader in READERS:
        if reader.name == name:
            return reader
    raise ValueError(f"unknown annotation format {name!r}; known: {', '.join(FORMAT_NAMES)}")


def file_format(path: Path, first_fields: list[str], line: int, format: str = AUTO) -> FileFormat:
    """The format of a file whose first non-blank line (number `line`) splits into
    `first_fields`: detected (`auto`) or the one the source names."""
    if format != AUTO:
        reader = _reader_named(format)
        if reader.is_header(first_fields):
            return FileFormat(reader, has_header=True)
        for other in READERS:
            if other is not reader and other.is_header(first_fields):
                raise DataError(
                    f"this is the {other.name} header, but the source says format: {format}",
                    path,
                    line,
                )
        return FileFormat(reader, has_header=False)
    for reader in READERS:
        if reader.is_header(first_fields):
            return FileFormat(reader, has_header=True)
    for reader in READERS:
        if reader.claims(first_fields):
            return FileFormat(reader, has_header=False)
    raise DataError(
        f"unrecognised annotation format: {','.join(first_fields)!r} is neither a known header "
        f"nor a data line (known formats: {', '.join(FORMAT_NAMES)})",
        path,
        line,
    )
