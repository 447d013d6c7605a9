"""A miniature of the lab's ObjectAttention data, written the way the lab's scripts write it.

- Frames: binary PPM (P6), 640x480, as the robot camera's dumper stores them.
- labelImg route (`VTD_retrain_annotationTXT.py`): the header
  `frame x_min y_min x_max y_max gaze_x gaze_y` with single spaces, then
  `00000000, 206, 24, 300, 144, 350.5, 200.0`: 8-digit frame names without extension, the
  head box's integers as labelImg wrote them, the gaze a float (`str((a + b) / 2)`).
- OpenPose route (`subsample_rename_annotate.py`): no header; the frame field is the renamed
  keypoint file's name, `00012.json`; the box floored integers, or `None` four times when no
  head keypoint was found.

Everything goes under a temporary folder; nothing here is kept in the repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LAB_HEADER = "frame x_min y_min x_max y_max gaze_x gaze_y"
WIDTH, HEIGHT = 640, 480


def write_ppm(path: Path, box: Sequence[int] | None = None, seed: int = 0) -> None:
    """A P6 PPM of 640x480: a gradient, a bright head box, some noise (deterministic)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(40, 120, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(0, 255, WIDTH, dtype=np.uint8)[None, :]
    if box is not None:
        x0, y0, x1, y1 = (int(value) for value in box)
        pixels[y0:y1, x0:x1] = 240
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"P6\n{WIDTH} {HEIGHT}\n255\n".encode("ascii") + pixels.tobytes())


@dataclass(frozen=True)
class LabFrame:
    """One annotation line: a frame field as the script wrote it, box (None: no head), gaze."""

    field: str
    box: tuple[int, int, int, int] | None
    gaze: tuple[float, float]

    @property
    def image_name(self) -> str:
        return f"{self.field.split('.')[0]}.ppm"

    def line(self) -> str:
        box = [str(value) for value in self.box] if self.box else ["None"] * 4
        return ", ".join([self.field, *box, str(self.gaze[0]), str(self.gaze[1])])


def labelimg_frames(count: int, *, start: int = 0, out_of_frame: int = 0) -> list[LabFrame]:
    """`count` frames of the labelImg route: one box for the folder, gaze at an object's
    centre (the last `out_of_frame` frames look outside the image: -1, -1)."""
    frames = []
    for i in range(start, start + count):
        gaze = (-1.0, -1.0) if i >= start + count - out_of_frame else ((300 + 401) / 2, 200.0)
        frames.append(LabFrame(f"{i:08d}", (206, 24, 300, 144), gaze))
    return frames


def openpose_frames(count: int, *, no_head: Sequence[int] = ()) -> list[LabFrame]:
    """`count` frames of the OpenPose route (`00000.json`, ...), `None` boxes at `no_head`."""
    return [
        LabFrame(
            f"{i:05d}.json",
            None if i in no_head else (250 + i, 60, 330 + i, 166),
            (480.0, 330.5),
        )
        for i in range(count)
    ]


def write_lab_clip(
    root: Path,
    *,
    subset: str,
    session: str,
    setting: str,
    frames: Sequence[LabFrame],
    name: str = "S11",
    header: bool = True,
    images: bool = True,
) -> Path:
    """`images/<session>/<setting>/*.ppm` and `annotations/<subset>/<session>/<setting>/
    <name>.txt`, written line by line as the lab's scripts append them; returns the file."""
    for index, frame in enumerate(frames):
        image = root / "images" / session / setting / frame.image_name
        if images and not image.exists():
            write_ppm(image, frame.box, seed=index)
    annotation = root / "annotations" / subset / session / setting / f"{name}.txt"
    annotation.parent.mkdir(parents=True, exist_ok=True)
    with annotation.open("w") as out:
        if header:
            out.write(LAB_HEADER + "\n")
        for frame in frames:
            out.write(frame.line() + "\n")
    return annotation
