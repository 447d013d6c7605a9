"""VideoAttentionTarget annotation files: no header; `path,xmin,ymin,xmax,ymax,gazex,gazey`.

`path` is the frame's file name with its extension; values are pixels; gaze `-1,-1` means the
person looks outside the frame.
"""

from __future__ import annotations

from typing import ClassVar

from vtd.data.formats._base import AnnotationReader, AnnotationRow, looks_numeric, parse_frame_row

COLUMNS = ("path", "xmin", "ymin", "xmax", "ymax", "gazex", "gazey")


class VideoAttentionTargetReader(AnnotationReader):
    name: ClassVar[str] = "videoattentiontarget"

    def claims(self, first_fields: list[str]) -> bool:
        # Headerless: the first line is already data, so some value after the frame name is
        # a number, where a header has none (a malformed first line is then reported by
        # `parse`, with its line number, and may be skipped like any other).
        return any(looks_numeric(field) for field in first_fields[1:])

    def parse(self, fields: list[str], line: int) -> AnnotationRow:
        return parse_frame_row(fields, line, COLUMNS)
