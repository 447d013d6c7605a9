"""The known annotation formats, and detection of a file's format from its first line.

Adding a format: write a module with an `AnnotationReader` subclass and list an instance here.
Readers with a header come first, so that a header is never mistaken for a malformed data line.
"""

from __future__ import annotations

from pathlib import Path

from vtd.data.errors import DataError
from vtd.data.formats._base import AnnotationReader
from vtd.data.formats._oa import ObjectAttentionReader
from vtd.data.formats._vat import VideoAttentionTargetReader

READERS: tuple[AnnotationReader, ...] = (ObjectAttentionReader(), VideoAttentionTargetReader())
FORMAT_NAMES: tuple[str, ...] = tuple(reader.name for reader in READERS)


def detect_format(path: Path, first_fields: list[str], line: int) -> AnnotationReader:
    """The reader whose format the file is in, judged from its first non-blank line."""
    for reader in READERS:
        if reader.claims(first_fields):
            return reader
    raise DataError(
        f"unrecognised annotation format: {','.join(first_fields)!r} is neither a known header "
        f"nor a data line (known formats: {', '.join(FORMAT_NAMES)})",
        path,
        line,
    )
