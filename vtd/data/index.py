"""The in-memory index of clips: every annotation file read, checked, and its images resolved.

`build_index(sources, base_dir)` walks `<root>/<annotations>/<subset>/<show>/<clip>/*.txt` of
each source, detects each file's format, checks every line, finds each frame's image whatever
its extension, and smooths the head boxes as published (moving average of 11 frames). The
result is a list of `Clip`s holding only paths and numbers: no pixels are read here but one
image header per clip, for its size.

Bad input stops with one `DataError` naming the file and line. With `on_bad_frame="skip"`,
frame-level problems (malformed line, no head detected, bad box or gaze, missing image,
repeated frame) drop the frame instead and are counted in one warning and in the
`DataIndex` that `index_data` returns (for `vtd-sweep data`); an empty file, or a clip left
with no frame, is still an error: a clip never disappears silently.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vtd.data.config import DataConfig, SourceSpec
from vtd.data.errors import DataError
from vtd.data.formats import FileFormat, file_format
from vtd.data.formats._base import AnnotationRow, RowError
from vtd.data.images import AmbiguousImageError, ImageFolders, image_size
from vtd.data.targets import SMOOTHING_WINDOW, smooth_track

logger = logging.getLogger(__name__)

OnBadFrame = Literal["error", "skip"]
# A box or gaze point may overshoot the image border by this fraction of the image size
# (annotators click a little outside); beyond it the value is taken for a mistake.
BORDER_TOLERANCE = 0.1


@dataclass(frozen=True, eq=False)
class Clip:
    """One person's annotated track in one clip: image paths and per-frame pixel values.

    `boxes` (T, 4) are the smoothed head boxes x0, y0, x1, y1 and `gaze` (T, 2) the gaze
    points in pixels of images of `image_size` (width, height), (-1, -1) when the person looks
    outside the frame. `lines` are the annotation lines the frames come from.
    """

    source: str
    """The annotation format: "videoattentiontarget" or "objectattention"."""
    dataset: str
    """The name of the source (data set) in the config."""
    subset: str
    """The annotation subfolder, e.g. "train" or "test"."""
    show: str
    clip: str
    person: str
    annotation_file: Path
    frames: tuple[Path, ...]
    lines: tuple[int, ...]
    boxes: np.ndarray
    gaze: np.ndarray
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        for array in (self.boxes, self.gaze):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return f"Clip({self.key!r}, {len(self)} frames, {self.source})"

    @property
    def key(self) -> str:
        """A name unique within an index: data set, subset, show, clip and person."""
        return f"{self.dataset}/{self.subset}/{self.show}/{self.clip}/{self.person}"

    @property
    def inout(self) -> np.ndarray:
        """(T,) bool: whether the gaze target is inside the frame."""
        return ~np.all(self.gaze == -1, axis=1)


@dataclass(frozen=True)
class SkippedFrame:
    """A bad frame left out under `on_bad_frame="skip"`: where, what kind, and why."""

    annotation_file: Path
    line: int | None
    kind: str
    """E.g. "malformed lines", "no head detected", "missing images"."""
    reason: str


@dataclass(frozen=True)
class DataIndex:
    """What indexing found: the clips, the frames skipped, and how each file was read."""

    clips: list[Clip]
    skipped: list[SkippedFrame]
    formats: dict[Path, FileFormat]
    """Annotation file -> its format (reader, and whether it had a header)."""


@dataclass
class _Problems:
    """Stops at the first bad frame, or counts and skips them (`on_bad_frame="skip"`)."""

    mode: OnBadFrame
    counts: Counter[str] = field(default_factory=Counter)
    first: DataError | None = None
    skipped: list[SkippedFrame] = field(default_factory=list)

    def frame(self, kind: str, error: DataError) -> None:
        if self.mode == "error":
            # Called from `except` blocks: the reader's own exception adds nothing.
            raise error from None
        self.counts[kind] += 1
        if self.first is None:
            self.first = error
        assert error.path is not None, "a bad frame is always located in its annotation file"
        self.skipped.append(SkippedFrame(error.path, error.line, kind, error.reason))

    def warn(self) -> None:
        if self.counts:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts.items()))
            logger.warning(
                "skipped %d bad frames (%s); the first: %s",
                sum(self.counts.values()),
                kinds,
                self.first,
            )


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped fields) of every non-blank line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read annotation file: {error}", path) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            fields = next(csv.reader([line], skipinitialspace=True))
            yield number, [item.strip() for item in fields]


def _check_values(row: AnnotationRow, size: tuple[int, int]) -> tuple[float, float]:
    """Raise `RowError` for a bad box or gaze; return the gaze moved inside the image.

    A gaze point slightly outside the image is moved onto its border, as the published
    loader did for negative values; (-1, -1) stays: it marks an out-of-frame target.
    """
    width, height = size
    x0, y0, x1, y1 = row.box
    if x1 <= x0 or y1 <= y0:
        raise RowError(f"head box {list(row.box)} has xmax <= xmin or ymax <= ymin")
    margin_x, margin_y = BORDER_TOLERANCE * width, BORDER_TOLERANCE * height
    overlaps = x0 < width and y0 < height and x1 > 0 and y1 > 0
    within = x0 >= -margin_x and y0 >= -margin_y and x1 <= width + margin_x
    if not (overlaps and within and y1 <= height + margin_y):
        raise RowError(f"head box {list(row.box)} lies outside the {width}x{height} image")
    gaze_x, gaze_y = row.gaze
    if (gaze_x, gaze_y) == (-1.0, -1.0):
        return gaze_x, gaze_y
    if not (-margin_x <= gaze_x <= width + margin_x and -margin_y <= gaze_y <= height + margin_y):
        raise RowError(
            f"gaze point {list(row.gaze)} lies outside the {width}x{height} image "
            "(-1,-1 marks an out-of-frame target)"
        )
    return min(max(gaze_x, 0.0), float(width)), min(max(gaze_y, 0.0), float(height))


def _read_rows(
    path: Path, problems: _Problems, format: str
) -> tuple[FileFormat, list[AnnotationRow]]:
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise DataError("empty annotation file: no header and no frame", path)
    found = file_format(path, first[1], first[0], format)
    rows: list[AnnotationRow] = []
    data_lines = lines if found.has_header else iter([first, *lines])
    seen_lines = 0
    for number, fields in data_lines:
        seen_lines += 1
        try:
            rows.append(found.reader.parse(fields, number))
        except RowError as error:
            problems.frame(error.kind, DataError(str(error), path, number))
    if seen_lines == 0:
        raise DataError(f"empty annotation file: a header and no frame ({found.label})", path)
    return found, rows


def _read_clip(
    path: Path,
    *,
    dataset: str,
    subset: str,
    image_root: Path,
    folders: ImageFolders,
    problems: _Problems,
    smoothing_window: int,
    format: str,
    formats: dict[Path, FileFormat],
) -> Clip:
    show, clip_name, person = path.parent.parent.name, path.parent.name, path.stem
    image_folder = image_root / show / clip_name
    found, rows = _read_rows(path, problems, format)
    formats[path] = found
    seen: dict[Path, int] = {}  # image -> line: `0001` and `0001.jpg` are the same frame
    size: tuple[int, int] | None = None
    frames: list[Path] = []
    kept: list[AnnotationRow] = []
    gaze: list[tuple[float, float]] = []
    for row in rows:
        try:
            image = folders.find(image_folder, row.frame)
        except AmbiguousImageError as error:
            problems.frame("ambiguous images", DataError(str(error), path, row.line))
            continue
        if image is None:
            message = f"image for frame {row.frame!r} not found in {image_folder}"
            problems.frame("missing images", DataError(message, path, row.line))
            continue
        if image in seen:
            message = f"frame {row.frame!r} listed twice (first on line {seen[image]})"
            problems.frame("repeated frames", DataError(message, path, row.line))
            continue
        seen[image] = row.line
        if size is None:
            try:
                size = image_size(image)
            except DataError as error:  # it names the image; the location is the line
                problems.frame("unreadable images", DataError(str(error), path, row.line))
                continue
        try:
            gaze.append(_check_values(row, size))
        except RowError as error:
            problems.frame("bad boxes or gaze", DataError(str(error), path, row.line))
            continue
        frames.append(image)
        kept.append(row)
    if not kept:
        raise DataError(f"no usable frame left in this clip ({len(rows)} lines read)", path)
    boxes = smooth_track(np.array([row.box for row in kept], dtype=np.float64), smoothing_window)
    return Clip(
        source=found.reader.name,
        dataset=dataset,
        subset=subset,
        show=show,
        clip=clip_name,
        person=person,
        annotation_file=path,
        frames=tuple(frames),
        lines=tuple(row.line for row in kept),
        boxes=boxes,
        gaze=np.array(gaze, dtype=np.float64),
        image_size=size if size is not None else (0, 0),
    )


def _annotation_files(spec: SourceSpec, root: Path) -> list[tuple[str, Path]]:
    """(subset, file) for every `<subset>/<show>/<clip>/<person>.txt`, sorted."""
    annotation_root = root / spec.annotations
    if not annotation_root.is_dir():
        raise DataError(f"annotation folder not found (source {spec.dataset!r})", annotation_root)
    if spec.subsets is None:
        subsets = sorted(entry.name for entry in annotation_root.iterdir() if entry.is_dir())
    else:
        subsets = list(spec.subsets)
        for subset in subsets:
            if not (annotation_root / subset).is_dir():
                raise DataError(
                    f"subset folder {subset!r} not found (source {spec.dataset!r})",
                    annotation_root / subset,
                )
    files = [
        (subset, path)
        for subset in subsets
        for path in sorted((annotation_root / subset).glob("*/*/*.txt"))
    ]
    if not files:
        raise DataError(
            "no annotation files found; expected <subset>/<show>/<clip>/<person>.txt "
            f"(source {spec.dataset!r})",
            annotation_root,
        )
    return files


def build_index(
    sources: DataConfig | SourceSpec | Sequence[SourceSpec],
    base_dir: Path | str = ".",
    *,
    on_bad_frame: OnBadFrame | None = None,
    smoothing_window: int | None = None,
) -> list[Clip]:
    """Every clip of every source, in a fixed order (source, subset, show, clip, person).

    `base_dir` is the folder that relative source roots start from (the config file's).
    `on_bad_frame` and `smoothing_window` default to the `DataConfig`'s values when one is
    given, else to "error" and the published 11 frames.
    """
    return index_data(
        sources, base_dir, on_bad_frame=on_bad_frame, smoothing_window=smoothing_window
    ).clips


def index_data(
    sources: DataConfig | SourceSpec | Sequence[SourceSpec],
    base_dir: Path | str = ".",
    *,
    on_bad_frame: OnBadFrame | None = None,
    smoothing_window: int | None = None,
) -> DataIndex:
    """`build_index`, with the frames it skipped and the format of each file."""
    if isinstance(sources, DataConfig):
        specs: Sequence[SourceSpec] = sources.sources
        on_bad_frame = on_bad_frame or sources.on_bad_frame
        smoothing_window = smoothing_window or sources.smoothing_window
    elif isinstance(sources, SourceSpec):
        specs = [sources]
    else:
        specs = sources
    problems = _Problems(on_bad_frame or "error")
    window = smoothing_window or SMOOTHING_WINDOW
    clips: list[Clip] = []
    formats: dict[Path, FileFormat] = {}
    for spec in specs:
        root = spec.resolve(base_dir)
        if not root.is_dir():
            raise DataError(f"data set folder not found (source {spec.dataset!r})", root)
        folders = ImageFolders()
        for subset, path in _annotation_files(spec, root):
            clips.append(
                _read_clip(
                    path,
                    dataset=spec.dataset,
                    subset=subset,
                    image_root=root / spec.images,
                    folders=folders,
                    problems=problems,
                    smoothing_window=window,
                    format=spec.format,
                    formats=formats,
                )
            )
    problems.warn()
    logger.info(
        "indexed %d clips, %d frames from %d sources",
        len(clips),
        sum(len(clip) for clip in clips),
        len(specs),
    )
    return DataIndex(clips=clips, skipped=problems.skipped, formats=formats)
