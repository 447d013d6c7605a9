"""Tiny data sets on disk for the vtd.data tests, in both published layouts.

Frames are small (64x48 by default) flat-colour images with a bright square at the head box,
so that tests can tell frames, flips and crops apart by their pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

OA_HEADER = "frame,x_min,y_min,x_max,y_max,gaze_x,gaze_y"


@dataclass(frozen=True)
class FrameSpec:
    name: str
    box: tuple[float, float, float, float]
    gaze: tuple[float, float]


def frame_specs(
    count: int, size: tuple[int, int] = (64, 48), *, out_every: int = 4, first: int = 1
) -> list[FrameSpec]:
    """`count` frames whose head box drifts right; every `out_every`-th gaze out of frame."""
    width, height = size
    specs = []
    for i in range(count):
        x0 = 4 + (i * 3) % (width // 2)
        box = (float(x0), 6.0, float(x0 + 12), 20.0)
        gaze = (
            (-1.0, -1.0)
            if out_every and i % out_every == out_every - 1
            else (
                float(width - 10 - i % 7),
                float(height - 8),
            )
        )
        specs.append(FrameSpec(f"{first + i:08d}", box, gaze))
    return specs


def write_image(path: Path, size: tuple[int, int], seed: int, box=None) -> None:
    width, height = size
    rng = np.random.default_rng(seed)
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = rng.integers(30, 200, size=3, dtype=np.uint8)
    # A left-right gradient in red, so that a flip shows in the pixels.
    pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        pixels[max(y0, 0) : y1, max(x0, 0) : x1] = 250
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_clip(
    root: Path,
    *,
    layout: str,
    subset: str,
    show: str,
    clip: str,
    person: str,
    frames: Sequence[FrameSpec],
    size: tuple[int, int] = (64, 48),
    extension: str | None = None,
    write_images: bool = True,
    seed: int = 0,
) -> Path:
    """One clip's images and one person's annotation file; returns the annotation file."""
    extension = extension or (".jpg" if layout == "videoattentiontarget" else ".ppm")
    image_dir = root / "images" / show / clip
    for i, spec in enumerate(frames):
        path = image_dir / f"{spec.name}{extension}"
        if write_images and not path.exists():
            write_image(path, size, seed * 1000 + i, spec.box)
    lines = [OA_HEADER] if layout == "objectattention" else []
    for spec in frames:
        name = spec.name if layout == "objectattention" else f"{spec.name}{extension}"
        values = ",".join(f"{value:g}" for value in (*spec.box, *spec.gaze))
        lines.append(f"{name},{values}")
    annotation = root / "annotations" / subset / show / clip / f"{person}.txt"
    annotation.parent.mkdir(parents=True, exist_ok=True)
    annotation.write_text("\n".join(lines) + "\n")
    return annotation


def write_train_clip(
    root: Path,
    layout: str,
    frames: Sequence[FrameSpec],
    *,
    show: str = "S",
    clip: str = "c",
    person: str = "p",
    **options: Any,
) -> Path:
    """`write_clip` of a training clip, for tests to which the show, clip and person names do
    not matter; returns the annotation file."""
    return write_clip(
        root,
        layout=layout,
        subset="train",
        show=show,
        clip=clip,
        person=person,
        frames=frames,
        **options,
    )


def write_dataset(
    root: Path,
    *,
    layout: str,
    shows: Sequence[str],
    subset_of: dict[str, str] | None = None,
    clips_per_show: int = 1,
    persons: Sequence[str] = ("s00",),
    lengths: Sequence[int] = (7,),
    size: tuple[int, int] = (64, 48),
) -> Path:
    """A data set of several shows; clip lengths cycle through `lengths`."""
    count = 0
    for show in shows:
        subset = (subset_of or {}).get(show, "train")
        for c in range(clips_per_show):
            for person in persons:
                length = lengths[count % len(lengths)]
                write_clip(
                    root,
                    layout=layout,
                    subset=subset,
                    show=show,
                    clip=f"clip{c}",
                    person=person,
                    frames=frame_specs(length, size),
                    size=size,
                    seed=count,
                )
                count += 1
    return root
