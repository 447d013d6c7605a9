"""The checks both layouts make on a folder's frames: boxes inside the frames, the XML's
image size, and each frame's head box from its OpenPose file."""

from __future__ import annotations

from pathlib import Path

from vtd.data.errors import DataError
from vtd.prepare._openpose import MissingHeadError, head_box
from vtd.prepare._voc import VocAnnotation
from vtd.prepare.options import Box, PrepareOptions


def check_inside(box: Box, size: tuple[int, int], what: str, annotation: VocAnnotation) -> None:
    if box[0] < 0 or box[1] < 0 or box[2] > size[0] or box[3] > size[1]:
        raise DataError(
            f"{what} ({', '.join(f'{v:g}' for v in box)}) lies outside the "
            f"{size[0]}x{size[1]} frames of this folder",
            annotation.path,
        )


def check_size(
    annotation: VocAnnotation, size: tuple[int, int], frame: Path, boxes: dict[str, Box]
) -> None:
    """The frame's size is the XML's, and `boxes` (name: box) lie inside it."""
    if annotation.size is not None and annotation.size != size:
        raise DataError(
            f"annotated for {annotation.size[0]}x{annotation.size[1]} images but "
            f"{frame.name} is {size[0]}x{size[1]}",
            annotation.path,
        )
    for name, box in boxes.items():
        check_inside(box, size, f"box {name!r}", annotation)


def options_head_box(keypoint_file: Path, size: tuple[int, int], options: PrepareOptions) -> Box:
    return head_box(
        keypoint_file,
        size,
        rule=options.head_box,
        min_confidence=options.min_confidence,
        scale=options.head_scale,
        aspect=options.head_aspect,
    )


def missing_head(error: MissingHeadError) -> MissingHeadError:
    return MissingHeadError(
        f"{error.reason}; skip_bad_frames (--skip-bad-frames) leaves such frames out",
        error.path,
        error.line,
    )
