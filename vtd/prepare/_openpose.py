"""OpenPose JSON (BODY_25 model): a head box from the nose, eye and ear keypoints of one frame.

OpenPose writes one file per frame, `{"version": ..., "people": [{"pose_keypoints_2d":
[x0, y0, c0, x1, y1, c1, ...]}, ...]}` with 25 keypoints per person; a keypoint it did not find
is `0, 0, 0`. BODY_25 numbers the head keypoints nose 0, right eye 15, left eye 16, right ear 17,
left ear 18. Two rules turn them into a head box (`head_box(..., rule=...)`):

- `lab` (the default): the lab's own rule (`get_openpose_bbox` in its `VTD_retrain/src`
  scripts), so that re-preparing its recordings gives the boxes its annotation files hold, to
  the pixel. The FIRST person of `people` is the one annotated; a head keypoint is present when
  (x, y) != (0, 0), whatever its confidence. With W x H the image size: cy = mean y of the
  present keypoints, set to H - 1 when >= H and to 0 when < 0; min_x, max_x = their x extent;
  min_x -= 0.2 (max_x - min_x); then max_x += 0.2 (max_x - min_x), with the updated min_x;
  width = max_x - min_x; min_y = cy - (width / 3) * 2, max_y = cy + (width / 3) * 2; each of
  the four clamped to [0, W] or [0, H] and floored: integer pixels. No head keypoint present
  (the lab wrote `None` in the four box fields), or a box of no size (one keypoint alone, or a
  head outside the image), is a `MissingHeadError`.
- `centred`: take the head keypoints with confidence >= `min_confidence` (at least two are
  needed, one point has no size); their extent `span` is the larger of their x range and y range,
  which for a frontal face is the ear-to-ear distance; the box is `scale * span` wide and
  `aspect` times as high, centred on the middle of the keypoints' extent, clipped to the image.
  With several people, the one whose head keypoints are most confident (largest summed
  confidence) is taken.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np

from vtd.data.errors import DataError

HeadBoxRule = Literal["lab", "centred"]
HEAD_KEYPOINTS = {"nose": 0, "right eye": 15, "left eye": 16, "right ear": 17, "left ear": 18}
BODY_25_VALUES = 25 * 3


class MissingHeadError(DataError):
    """The frame's JSON is well formed but shows no usable head: skippable on request."""


def _keypoints(path: Path) -> list[np.ndarray]:
    """Each person's (25, 3) keypoints; structural problems are errors naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"cannot read: {error.strerror}", path) from None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"not valid JSON ({error.msg}, column {error.colno})", path, error.lineno
        ) from None
    people = content.get("people") if isinstance(content, dict) else None
    if not isinstance(people, list):
        raise DataError("no 'people' list: not an OpenPose keypoint file", path)
    result = []
    for index, person in enumerate(people):
        values = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
        if not isinstance(values, list) or len(values) != BODY_25_VALUES:
            found = len(values) if isinstance(values, list) else "no"
            raise DataError(
                f"people[{index}].pose_keypoints_2d has {found} values; the BODY_25 model "
                f"writes {BODY_25_VALUES} (25 keypoints x, y, confidence)",
                path,
            )
        try:
            keypoints = np.asarray(values, dtype=np.float64).reshape(25, 3)
        except (TypeError, ValueError):
            raise DataError(
                f"people[{index}].pose_keypoints_2d holds values that are not numbers", path
            ) from None
        if not np.all(np.isfinite(keypoints)):
            raise DataError(f"people[{index}].pose_keypoints_2d holds NaN or infinity", path)
        result.append(keypoints)
    return result


def head_box(
    path: Path,
    image_size: tuple[int, int],
    rule: HeadBoxRule = "lab",
    min_confidence: float = 0.1,
    scale: float = 1.3,
    aspect: float = 1.2,
) -> tuple[float, float, float, float]:
    """The head box (x_min, y_min, x_max, y_max) in pixels from one OpenPose JSON file.

    `rule` is `lab` or `centred` (see the module docstring; `min_confidence`, `scale` and
    `aspect` belong to `centred`). Raises `MissingHeadError` when the frame shows no usable head
    and `DataError` when the file is not a BODY_25 OpenPose file.
    """
    path = Path(path)
    people = _keypoints(path)
    if not people:
        raise MissingHeadError("no person detected (empty 'people' list)", path)
    if rule == "lab":
        return lab_head_box(people[0], image_size, path)
    return _centred_head_box(people, image_size, path, min_confidence, scale, aspect)


def lab_head_box(
    keypoints: np.ndarray, image_size: tuple[int, int], path: Path
) -> tuple[int, int, int, int]:
    """The lab's box from one person's (25, 3) keypoints; `path` only names the file in errors."""
    head = keypoints[list(HEAD_KEYPOINTS.values()), :2]
    present = head[(head[:, 0] != 0.0) | (head[:, 1] != 0.0)]
    if len(present) == 0:
        raise MissingHeadError(
            f"no head keypoint ({', '.join(HEAD_KEYPOINTS)}) of the first person: the lab "
            "wrote None in the four box fields",
            path,
        )
    width_limit, height_limit = image_size
    # np.mean over the keypoints in BODY_25 order, as the lab's compute_centroid: the same float;
    # its clamp moves only a mean >= H (to H - 1) or < 0 (to 0): 479.5 stays 479.5.
    centre_y = float(np.mean(present[:, 1]))
    if centre_y >= height_limit:
        centre_y = height_limit - 1.0
    centre_y = max(centre_y, 0.0)
    min_x, max_x = float(present[:, 0].min()), float(present[:, 0].max())
    min_x -= (max_x - min_x) * 0.2
    max_x += (max_x - min_x) * 0.2  # with min_x already moved: the lab's order
    width = max_x - min_x
    min_y = centre_y - (width / 3) * 2
    max_y = centre_y + (width / 3) * 2
    box = (
        math.floor(max(0.0, min(min_x, width_limit))),
        math.floor(max(0.0, min(min_y, height_limit))),
        math.floor(max(0.0, min(max_x, width_limit))),
        math.floor(max(0.0, min(max_y, height_limit))),
    )
    if not (box[2] > box[0] and box[3] > box[1]):
        raise MissingHeadError(
            f"the head box ({', '.join(map(str, box))}) has no size: "
            f"{len(present)} head keypoint(s), or a head outside the "
            f"{width_limit}x{height_limit} image",
            path,
        )
    return box


def _centred_head_box(
    people: list[np.ndarray],
    image_size: tuple[int, int],
    path: Path,
    min_confidence: float,
    scale: float,
    aspect: float,
) -> tuple[float, float, float, float]:
    indices = list(HEAD_KEYPOINTS.values())
    best_points = np.zeros((0, 2))
    best_score = -1.0
    for keypoints in people:
        head = keypoints[indices]
        confident = head[:, 2] >= min_confidence
        score = float(head[confident, 2].sum())
        if score > best_score:
            best_points, best_score = head[confident, :2], score
    if len(best_points) < 2:
        raise MissingHeadError(
            f"no person with two or more head keypoints ({', '.join(HEAD_KEYPOINTS)}) of "
            f"confidence >= {min_confidence:g} (best: {len(best_points)})",
            path,
        )
    low, high = best_points.min(axis=0), best_points.max(axis=0)
    span = float(max(high - low))
    if span <= 0:
        raise MissingHeadError("the confident head keypoints coincide: no head size", path)
    centre_x, centre_y = (low + high) / 2
    half_width = scale * span / 2
    half_height = aspect * half_width
    width, height = image_size
    box = (
        max(0.0, centre_x - half_width),
        max(0.0, centre_y - half_height),
        min(float(width), centre_x + half_width),
        min(float(height), centre_y + half_height),
    )
    if not (box[2] > box[0] and box[3] > box[1]) or not all(map(math.isfinite, box)):
        raise MissingHeadError(f"the head keypoints lie outside the {width}x{height} image", path)
    return box
