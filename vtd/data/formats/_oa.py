"""ObjectAttention annotation files, as the lab's scripts write them.

    frame x_min y_min x_max y_max gaze_x gaze_y
    00000000, 206, 24, 300, 144, 350.5, 200.0

The header is optional and its names may be separated by spaces (the lab's labelImg script)
or commas; data fields by `, ` or `,`. Frame names come without extension and may have any
number of digits (`00000234`, `00012`); the images are `.ppm`, 640x480. One of the lab's
OpenPose scripts left the keypoint file's name in the frame field (`00012.json`): the frame
is its stem. Values are pixels; gaze `-1,-1` means the person looks outside the frame. A box
of `None`s is what the lab's OpenPose script wrote when it found no head keypoint: a bad
frame of its own kind ("no head detected"), never a number.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import ClassVar

from vtd.data.formats._base import (
    AnnotationReader,
    AnnotationRow,
    RowError,
    header_words,
    looks_numeric,
    parse_frame_row,
)

COLUMNS = ("frame", "x_min", "y_min", "x_max", "y_max", "gaze_x", "gaze_y")
NO_HEAD = "no head detected"
# The keypoint file's extension, left in the frame field by one of the lab's scripts.
_KEYPOINT_SUFFIX = ".json"


def _is_none(text: str) -> bool:
    return text.lower() == "none"


class ObjectAttentionReader(AnnotationReader):
    name: ClassVar[str] = "objectattention"

    def is_header(self, first_fields: list[str]) -> bool:
        return header_words(first_fields) == COLUMNS

    def claims(self, first_fields: list[str]) -> bool:
        # A headerless line of the lab's: a frame name without an image extension, then
        # values (numbers, or the OpenPose script's None).
        suffix = PurePosixPath(first_fields[0]).suffix.lower() if first_fields else ""
        values = first_fields[1:]
        return suffix in ("", _KEYPOINT_SUFFIX) and any(
            looks_numeric(text) or _is_none(text) for text in values
        )

    def parse(self, fields: list[str], line: int) -> AnnotationRow:
        if len(fields) == len(COLUMNS) and any(_is_none(text) for text in fields[1:5]):
            raise RowError(
                f"no head detected: the head box is {', '.join(fields[1:5])} (the OpenPose "
                "script found no head keypoint)",
                kind=NO_HEAD,
            )
        row = parse_frame_row(fields, line, COLUMNS)
        frame = PurePosixPath(row.frame)
        if frame.suffix.lower() == _KEYPOINT_SUFFIX:
            return AnnotationRow(line=row.line, frame=frame.stem, box=row.box, gaze=row.gaze)
        return row
