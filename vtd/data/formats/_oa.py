"""ObjectAttention annotation files: a header line, then `frame,x_min,...,gaze_y` rows.

Frame names come without extension (the images are `.ppm`, 640x480); values are pixels; gaze
`-1,-1` means the person looks outside the frame.
"""

from __future__ import annotations

from typing import ClassVar

from vtd.data.formats._base import AnnotationReader, AnnotationRow, parse_frame_row

COLUMNS = ("frame", "x_min", "y_min", "x_max", "y_max", "gaze_x", "gaze_y")


class ObjectAttentionReader(AnnotationReader):
    name: ClassVar[str] = "objectattention"
    header_lines: ClassVar[int] = 1

    def claims(self, first_fields: list[str]) -> bool:
        return tuple(field.lower() for field in first_fields) == COLUMNS

    def parse(self, fields: list[str], line: int) -> AnnotationRow:
        return parse_frame_row(fields, line, COLUMNS)
