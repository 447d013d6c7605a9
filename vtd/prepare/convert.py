"""`prepare`: labelImg VOC XML or OpenPose JSON to ObjectAttention annotation files.

Input, one folder per recording, as the lab's seed workflow has it (a static robot camera per
setting)::

    <source>/<session>/<setting>/   the frames (any extension PIL reads), and one labelImg XML

Frames are taken in natural name order (`frame_2` before `frame_10`); every `every`-th frame is
kept, starting with the first, and renamed in sequence. Output, in the ObjectAttention layout::

    <output>/images/<session>/<setting>/000001.<ext>, 000002.<ext>, ...   (copied or linked)
    <output>/annotations/<split>/<session>/<setting>/<person>.txt

each annotation file holding the header `frame,x_min,y_min,x_max,y_max,gaze_x,gaze_y` and one
line per kept frame, in pixels; gaze `-1,-1` when the person looks out of frame.

- The labelImg XML annotates one frame and stands for its whole folder: its box named `head`
  (`head_source="voc"`) is every frame's head box, and the centre of the box named by the
  folder's target object is every frame's gaze point.
- `head_source="openpose"`: each kept frame's head box comes from its OpenPose JSON file
  `<frame stem>_keypoints.json` (or `<frame stem>.json`), found in the frame's folder or, with
  `keypoints`, in `<keypoints>/<session>/<setting>/` (see `vtd.prepare._openpose` for the rule); the
  gaze still comes from the target object's box in the folder's XML, and a folder whose target
  is empty (out of frame) needs no XML.
- The target object's name: `target` for every folder, or `targets`, a CSV file with the header
  `session,setting,target` and one line per folder; an empty target means out of frame.

Nothing is written until every input has been read and checked, and no existing file is
overwritten unless `force` is set. Bad input is one `DataError` naming the file (and line): an
XML that does not parse, a missing or duplicated `head` box, an unknown target name (the names
present are listed), a reversed box or one outside the image, an OpenPose file without a person
or without two confident head keypoints (skipped with a warning and a count instead when
`skip_bad_frames` is set), a frame listed twice (two images, or two keypoint files, for one frame
name; a folder twice in the targets file).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vtd.data.errors import DataError
from vtd.data.formats import OA_COLUMNS as COLUMNS
from vtd.data.images import image_extensions, image_size
from vtd.prepare._openpose import MissingHeadError, head_box
from vtd.prepare._voc import VocAnnotation, read_voc

logger = logging.getLogger(__name__)

# What the ObjectAttention reader (`_oa`) expects, so that `build_index` reads the output.
HEADER = ",".join(COLUMNS)
TARGETS_COLUMNS = ("session", "setting", "target")
OUT_OF_FRAME = (-1.0, -1.0)
FRAME_DIGITS = 6
_SIMPLE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"

Box = tuple[float, float, float, float]


class PrepareOptions(BaseModel):
    """How `prepare` reads its input and writes its output (the CLI's flags, one to one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    head_source: Literal["voc", "openpose"] = "voc"
    target: str | None = Field(default=None, min_length=1)
    targets: Path | None = None
    split: str = Field(default="train", pattern=_SIMPLE_NAME)
    person: str = Field(default="person", pattern=_SIMPLE_NAME)
    every: int = Field(default=1, ge=1)
    link: Literal["copy", "hardlink", "symlink"] = "copy"
    force: bool = False
    skip_bad_frames: bool = False
    keypoints: Path | None = None
    head_label: str = Field(default="head", min_length=1)
    min_confidence: float = Field(default=0.1, gt=0.0, le=1.0)
    head_scale: float = Field(default=1.3, gt=0.0)
    head_aspect: float = Field(default=1.2, gt=0.0)

    @model_validator(mode="after")
    def _one_target_source(self) -> PrepareOptions:
        if (self.target is None) == (self.targets is None):
            raise ValueError(
                "give the target object either as `target` (one name for every folder) or as "
                "`targets` (a CSV file session,setting,target), not both and not neither"
            )
        if self.target is not None and self.target == self.head_label:
            raise ValueError(f"the target object cannot be the head box {self.head_label!r}")
        return self


@dataclass(frozen=True)
class PreparedClip:
    session: str
    setting: str
    annotation_file: Path
    frames: tuple[Path, ...]  # written images, in order
    sources: tuple[Path, ...]  # the source image of each


@dataclass(frozen=True)
class SkippedFrame:
    path: Path
    reason: str


@dataclass(frozen=True)
class PrepareReport:
    clips: tuple[PreparedClip, ...]
    skipped: tuple[SkippedFrame, ...]

    @property
    def frames_written(self) -> int:
        return sum(len(clip.frames) for clip in self.clips)


@dataclass(frozen=True)
class _Folder:
    session: str
    setting: str
    path: Path


@dataclass(frozen=True)
class _Row:
    source: Path
    box: Box
    gaze: tuple[float, float]


def _natural_key(path: Path) -> tuple[list[int | str], str]:
    parts = re.split(r"(\d+)", path.stem)
    return [int(part) if part.isdigit() else part.lower() for part in parts], path.name


def _subfolders(path: Path) -> list[Path]:
    return sorted(child for child in path.iterdir() if child.is_dir() and child.name[0] != ".")


def _discover(source: Path) -> list[_Folder]:
    if not source.is_dir():
        raise DataError("source folder not found", source)
    sessions = _subfolders(source)
    if not sessions:
        raise DataError("no <session>/<setting> folders found", source)
    folders = []
    for session in sessions:
        settings = _subfolders(session)
        if not settings:
            # Frames one level too high would otherwise be left out without a word.
            raise DataError("no <setting> folders in this session folder", session)
        folders.extend(_Folder(session.name, setting.name, setting) for setting in settings)
    return folders


def read_targets(path: Path) -> dict[tuple[str, str], str | None]:
    """The targets CSV: (session, setting) -> target object name, None for out of frame."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as error:
        raise DataError(f"cannot read targets file: {error.strerror}", path) from None
    rows = list(csv.reader(lines))
    if not rows or tuple(field.strip() for field in rows[0]) != TARGETS_COLUMNS:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise DataError(f"expected the header {','.join(TARGETS_COLUMNS)}, found {found}", path, 1)
    targets: dict[tuple[str, str], str | None] = {}
    first_line: dict[tuple[str, str], int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(TARGETS_COLUMNS):
            raise DataError(
                f"expected {len(TARGETS_COLUMNS)} fields ({','.join(TARGETS_COLUMNS)}), "
                f"found {len(row)}",
                path,
                line,
            )
        session, setting, target = (field.strip() for field in row)
        key = (session, setting)
        if key in first_line:
            raise DataError(
                f"folder {session}/{setting} listed twice (first on line {first_line[key]})",
                path,
                line,
            )
        first_line[key] = line
        targets[key] = target or None
    return targets


def _targets_by_folder(
    folders: list[_Folder], options: PrepareOptions
) -> dict[tuple[str, str], str | None]:
    if options.targets is None:
        return {(folder.session, folder.setting): options.target for folder in folders}
    targets = read_targets(options.targets)
    found = {(folder.session, folder.setting) for folder in folders}
    for key in targets:
        if key not in found:
            raise DataError(f"folder {key[0]}/{key[1]} is not in the source", options.targets)
    for folder in folders:
        key = (folder.session, folder.setting)
        if key not in targets:
            raise DataError(f"no line for folder {key[0]}/{key[1]}", options.targets)
        if targets[key] == options.head_label:
            raise DataError(
                f"folder {key[0]}/{key[1]}: the target cannot be the head box "
                f"{options.head_label!r}",
                options.targets,
            )
    return targets


def _frames(folder: Path) -> list[Path]:
    suffixes = image_extensions()
    frames = sorted(
        (path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in suffixes),
        key=_natural_key,
    )
    by_stem: dict[str, Path] = {}
    for frame in frames:
        if frame.stem in by_stem:
            raise DataError(
                f"frame {frame.stem!r} listed twice: {by_stem[frame.stem].name} and {frame.name}",
                frame,
            )
        by_stem[frame.stem] = frame
    if not frames:
        raise DataError("no image files in this folder", folder)
    return frames


def _xml(folder: Path) -> Path:
    found = sorted(folder.glob("*.xml"))
    if len(found) != 1:
        names = ", ".join(path.name for path in found) or "none"
        raise DataError(
            f"expected one labelImg XML file in this folder, found {len(found)} ({names})", folder
        )
    return found[0]


def _check_inside(box: Box, size: tuple[int, int], what: str, annotation: VocAnnotation) -> None:
    if box[0] < 0 or box[1] < 0 or box[2] > size[0] or box[3] > size[1]:
        raise DataError(
            f"{what} ({', '.join(f'{v:g}' for v in box)}) lies outside the "
            f"{size[0]}x{size[1]} frames of this folder",
            annotation.path,
        )


def _keypoint_file(folder: _Folder, frame: Path, options: PrepareOptions) -> Path:
    directory = (
        options.keypoints / folder.session / folder.setting if options.keypoints else frame.parent
    )
    candidates = [directory / f"{frame.stem}_keypoints.json", directory / f"{frame.stem}.json"]
    found = [path for path in candidates if path.is_file()]
    if len(found) > 1:
        raise DataError(
            f"frame {frame.stem!r} listed twice: {found[0].name} and {found[1].name}", found[1]
        )
    if not found:
        raise DataError(f"no OpenPose file for frame {frame.name} ({candidates[0].name})", frame)
    return found[0]


def _plan_folder(
    folder: _Folder,
    target: str | None,
    options: PrepareOptions,
    skipped: list[SkippedFrame],
) -> list[_Row]:
    frames = _frames(folder.path)[:: options.every]
    needs_xml = options.head_source == "voc" or target is not None
    annotation = read_voc(_xml(folder.path)) if needs_xml else None
    gaze = OUT_OF_FRAME
    if annotation is not None and target is not None:
        gaze = annotation.only(target).centre
    voc_head = annotation.only(options.head_label).box if options.head_source == "voc" else None

    rows = []
    checked_size: tuple[int, int] | None = None
    for frame in frames:
        size = image_size(frame)
        if annotation is not None and size != checked_size:
            if annotation.size is not None and annotation.size != size:
                raise DataError(
                    f"annotated for {annotation.size[0]}x{annotation.size[1]} images but "
                    f"{frame.name} is {size[0]}x{size[1]}",
                    annotation.path,
                )
            if voc_head is not None:
                _check_inside(voc_head, size, f"box {options.head_label!r}", annotation)
            if target is not None:
                _check_inside(annotation.only(target).box, size, f"box {target!r}", annotation)
            checked_size = size
        if voc_head is not None:
            rows.append(_Row(frame, voc_head, gaze))
            continue
        keypoint_file = _keypoint_file(folder, frame, options)
        try:
            box = head_box(
                keypoint_file, size, options.min_confidence, options.head_scale, options.head_aspect
            )
        except MissingHeadError as error:
            if not options.skip_bad_frames:
                raise
            skipped.append(SkippedFrame(keypoint_file, error.reason))
            continue
        rows.append(_Row(frame, box, gaze))
    if not rows:
        raise DataError(
            f"every one of the {len(frames)} kept frames was skipped: no head found", folder.path
        )
    return rows


def _number(value: float) -> str:
    """Pixels with at most two decimals and no trailing zeros: 45, 12.5, 24.65."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _annotation_text(names: list[str], rows: list[_Row]) -> str:
    lines = [HEADER]
    for name, row in zip(names, rows, strict=True):
        lines.append(",".join([name, *map(_number, row.box), *map(_number, row.gaze)]))
    return "\n".join(lines) + "\n"


def _place(source: Path, destination: Path, link: str) -> None:
    if destination.exists() or destination.is_symlink():
        destination.unlink()
    if link == "copy":
        shutil.copyfile(source, destination)
    elif link == "hardlink":
        os.link(source, destination)
    else:
        destination.symlink_to(source.resolve())


def prepare(source: Path, output: Path, options: PrepareOptions) -> PrepareReport:
    """Write ObjectAttention annotation files and renamed frames for every source folder.

    See the module docstring for the layouts, the target names and the errors. Returns what was
    written (and, with `skip_bad_frames`, what was skipped); raises `DataError` before writing
    anything when an input is bad or an output file exists and `force` is not set.
    """
    source, output = Path(source), Path(output)
    if output.resolve().is_relative_to(source.resolve()):
        raise DataError("the output folder must not lie inside the source folder", output)
    folders = _discover(source)
    targets = _targets_by_folder(folders, options)
    skipped: list[SkippedFrame] = []
    plans = []
    for folder in folders:
        rows = _plan_folder(folder, targets[(folder.session, folder.setting)], options, skipped)
        names = [f"{index:0{FRAME_DIGITS}d}" for index in range(1, len(rows) + 1)]
        images = output / "images" / folder.session / folder.setting
        destinations = [
            images / f"{name}{row.source.suffix.lower()}"
            for name, row in zip(names, rows, strict=True)
        ]
        annotation_file = (
            output / "annotations" / options.split / folder.session / folder.setting
        ) / f"{options.person}.txt"
        plans.append((folder, names, rows, destinations, annotation_file))

    existing = [
        path
        for _, _, _, destinations, annotation_file in plans
        for path in [*destinations, annotation_file]
        if path.exists() or path.is_symlink()
    ]
    if existing and not options.force:
        more = f" (and {len(existing) - 1} more output files)" if len(existing) > 1 else ""
        raise DataError(
            f"exists already{more}; pass force=True (--force) to overwrite", existing[0]
        )

    clips = []
    for folder, names, rows, destinations, annotation_file in plans:
        destinations[0].parent.mkdir(parents=True, exist_ok=True)
        for row, destination in zip(rows, destinations, strict=True):
            _place(row.source, destination, options.link)
        annotation_file.parent.mkdir(parents=True, exist_ok=True)
        annotation_file.write_text(_annotation_text(names, rows), encoding="utf-8", newline="\n")
        clips.append(
            PreparedClip(
                session=folder.session,
                setting=folder.setting,
                annotation_file=annotation_file,
                frames=tuple(destinations),
                sources=tuple(row.source for row in rows),
            )
        )
        logger.info(
            "%s/%s: %d frames written to %s", folder.session, folder.setting, len(rows), output
        )
    if skipped:
        logger.warning(
            "skipped %d frames without a usable head (skip_bad_frames), e.g. %s: %s",
            len(skipped),
            skipped[0].path,
            skipped[0].reason,
        )
    return PrepareReport(clips=tuple(clips), skipped=tuple(skipped))
