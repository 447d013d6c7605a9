"""`prepare`: labelImg VOC XML or OpenPose JSON to ObjectAttention annotation files.

Two input layouts (`layout`):

`lab`: the lab's raw recordings as they lie on disk (see `vtd.prepare._lab_raw`)::

    <source>/<participant>/<session>/<setting>/<name>.xml      labelImg: object boxes (+ head)
    <source>/<participant>/<session>/<setting>/<object>/rgb.../     frames (.ppm)
    <source>/<participant>/<session>/<setting>/<object>/json.../    OpenPose <frame>_keypoints.json

the gaze target of a frame is its object folder's name, and the output is what the lab's
scripts (`VTD_retrain/src/subsample_rename_annotate.py`, `VTD_retrain_annotationTXT.py`) wrote:
one file per setting, frames of the setting renamed with 5-digit counters from `00000` (object
folders in name order, the counter running on across them), every `every`-th frame kept (the lab
kept every 2nd: `every=2`), the lab's header `frame x_min y_min x_max y_max gaze_x gaze_y`, and
lines `00012, 206, 24, 300, 144, 350.5, 200.0` (fields joined by `, `, head box in integer
pixels, gaze the centre of the object's box as a float). Names (the lab's session folders,
`session_1`, ..., repeat for every participant, so a show names both)::

    <output>/images/<participant>_<session>/<setting>/00000.ppm, 00001.ppm, ...
    <output>/annotations/<split>/<participant>_<session>/<setting>/<participant>.txt

`split` is `test` for the participants in `test_participants` and `split` (default `train`) for
the others; a participant is thus a show prefix and a person name (`group_by: person` folds by
participant).

`settings` (the default; one folder per recording, target named by `target` / `targets`)::

    <source>/<session>/<setting>/   the frames (any extension PIL reads), and one labelImg XML

frames taken in natural name order (`frame_2` before `frame_10`), every `every`-th kept,
starting with the first, and renamed in sequence; output::

    <output>/images/<session>/<setting>/000001.<ext>, 000002.<ext>, ...   (copied or linked)
    <output>/annotations/<split>/<session>/<setting>/<person>.txt

each annotation file holding the header `frame,x_min,y_min,x_max,y_max,gaze_x,gaze_y` and one
line per kept frame, in pixels; gaze `-1,-1` when the person looks out of frame. The target:
`target` for every folder, or `targets`, a CSV file with the header `session,setting,target`
and one line per folder; an empty target means out of frame.

In both layouts:

- `head_source="voc"`: the labelImg XML annotates one frame and stands for its whole folder: the
  box NAMED `head` (`head_label`) is every frame's head box, wherever it lies in the XML. (The
  lab's script took the FIRST object's box as the head whenever the file had a `head` object:
  wrong whenever the head was not drawn first; the lab's files made that way hold an object's
  box as the head.)
- `head_source="openpose"`: each kept frame's head box comes from its OpenPose JSON file, by
  `head_box` rule `lab` (the default: the lab's `get_openpose_bbox`, to the pixel) or `centred`
  (see `vtd.prepare._openpose`). Settings layout: `<frame stem>_keypoints.json` (or `<frame
  stem>.json`) in the frame's folder or, with `keypoints`, in `<keypoints>/<session>/<setting>/`;
  a folder whose target is empty (out of frame) needs no XML.
- A frame whose OpenPose file shows no head (the lab wrote `None` in its four box fields, a line
  the reader rejects as a bad frame) is an error naming the file; with `skip_bad_frames` it is
  left out (neither image nor line written), counted and logged. In the lab layout the other
  frames keep their numbers, so that frame names still match the lab's files; in the settings
  layout the kept frames are numbered in sequence.

Nothing is written until every input has been read and checked, and no existing file is
overwritten unless `force` is set. Bad input is one `DataError` naming the file (and line): an
XML that does not parse, a missing or duplicated `head` box, an unknown target name (the names
present are listed), a reversed box or one outside the image, an OpenPose file without a person
or without a usable head, a frame listed twice (two images, or two keypoint files, for one frame
name; a folder twice in the targets file), an unknown test participant.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vtd.data.errors import DataError
from vtd.data.formats._oa import COLUMNS
from vtd.data.images import image_size
from vtd.prepare._frame_files import frame_files, subfolders
from vtd.prepare._lab_raw import LabSetting, read_lab_layout
from vtd.prepare._openpose import HeadBoxRule, MissingHeadError, head_box
from vtd.prepare._voc import VocAnnotation, read_voc

logger = logging.getLogger(__name__)

# What the ObjectAttention reader (`_oa`) expects, so that `build_index` reads the output.
HEADER = ",".join(COLUMNS)
# The lab's own files (`layout="lab"`): its header, single spaces, and `, ` between fields.
LAB_HEADER = " ".join(COLUMNS)
LAB_SEPARATOR = ", "
LAB_FRAME_DIGITS = 5  # the lab's counters: 00000, 00001, ... per setting
TARGETS_COLUMNS = ("session", "setting", "target")
OUT_OF_FRAME = (-1.0, -1.0)
FRAME_DIGITS = 6
_SIMPLE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._ -]*$"

Box = tuple[float, float, float, float]


class PrepareOptions(BaseModel):
    """How `prepare` reads its input and writes its output (the CLI's flags, one to one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Literal["settings", "lab"] = "settings"
    head_source: Literal["voc", "openpose"] = "voc"
    head_box: HeadBoxRule = "lab"
    test_participants: tuple[str, ...] = ()
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
        if self.layout == "lab":
            given = [
                name
                for name in ("target", "targets", "keypoints", "person")
                if name in self.model_fields_set
            ]
            if given:
                raise ValueError(
                    f"the lab layout takes no {', '.join(given)}: each object folder names its "
                    "gaze target, each participant its annotation file, and the OpenPose files "
                    "lie in the object's json... folder"
                )
            return self
        if self.test_participants:
            raise ValueError("test_participants needs the lab layout (layout='lab')")
        if (self.target is None) == (self.targets is None):
            raise ValueError(
                "give the target object either as `target` (one name for every folder) or as "
                "`targets` (a CSV file session,setting,target), not both and not neither; or "
                "read the lab's raw <participant>/<session>/<setting>/<object>/ folders with "
                "layout 'lab'"
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


@dataclass(frozen=True)
class _ClipPlan:
    session: str  # the output's show folder
    setting: str
    annotation_file: Path
    names: list[str]  # the frame names written, one per row
    rows: list[_Row]


def _discover(source: Path) -> list[_Folder]:
    if not source.is_dir():
        raise DataError("source folder not found", source)
    sessions = subfolders(source)
    if not sessions:
        raise DataError("no <session>/<setting> folders found", source)
    folders = []
    for session in sessions:
        settings = subfolders(session)
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


def _check_size(
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
        _check_inside(box, size, f"box {name!r}", annotation)


def _head_box(keypoint_file: Path, size: tuple[int, int], options: PrepareOptions) -> Box:
    return head_box(
        keypoint_file,
        size,
        rule=options.head_box,
        min_confidence=options.min_confidence,
        scale=options.head_scale,
        aspect=options.head_aspect,
    )


def _missing_head(error: MissingHeadError) -> MissingHeadError:
    return MissingHeadError(
        f"{error.reason}; skip_bad_frames (--skip-bad-frames) leaves such frames out",
        error.path,
        error.line,
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
    frames = frame_files(folder.path)[:: options.every]
    needs_xml = options.head_source == "voc" or target is not None
    annotation = read_voc(_xml(folder.path)) if needs_xml else None
    gaze = OUT_OF_FRAME
    if annotation is not None and target is not None:
        gaze = annotation.only(target).centre
    voc_head = annotation.only(options.head_label).box if options.head_source == "voc" else None

    boxes: dict[str, Box] = {}
    if voc_head is not None:
        boxes[options.head_label] = voc_head
    if annotation is not None and target is not None:
        boxes[target] = annotation.only(target).box
    rows = []
    checked_size: tuple[int, int] | None = None
    for frame in frames:
        size = image_size(frame)
        if annotation is not None and size != checked_size:
            _check_size(annotation, size, frame, boxes)
            checked_size = size
        if voc_head is not None:
            rows.append(_Row(frame, voc_head, gaze))
            continue
        keypoint_file = _keypoint_file(folder, frame, options)
        try:
            box = _head_box(keypoint_file, size, options)
        except MissingHeadError as error:
            if not options.skip_bad_frames:
                raise _missing_head(error) from None
            skipped.append(SkippedFrame(keypoint_file, error.reason))
            continue
        rows.append(_Row(frame, box, gaze))
    if not rows:
        raise DataError(
            f"every one of the {len(frames)} kept frames was skipped: no head found", folder.path
        )
    return rows


def _lab_show(setting: LabSetting) -> str:
    """The output show folder of a lab setting: participant and session, which alone repeats."""
    return f"{setting.participant}_{setting.session}"


def _check_test_participants(source: Path, settings: list[LabSetting], names: tuple[str, ...]):
    found = sorted({setting.participant for setting in settings})
    unknown = [name for name in names if name not in found]
    if unknown:
        raise DataError(
            f"test participant(s) {', '.join(unknown)} not found; participants here: "
            f"{', '.join(found)}",
            source,
        )


def _plan_lab_setting(
    setting: LabSetting, output: Path, options: PrepareOptions, skipped: list[SkippedFrame]
) -> _ClipPlan:
    annotation = read_voc(setting.xml)
    targets = {frame.target: annotation.only(frame.target) for frame in setting.frames}
    for name in targets:
        if name == options.head_label:
            raise DataError(
                f"object folder {name!r} is named as the head box, not a gaze target", setting.path
            )
    boxes = {name: target.box for name, target in targets.items()}
    # The box NAMED head, wherever it lies in the XML: the lab's script took the first object's.
    voc_head = annotation.only(options.head_label).box if options.head_source == "voc" else None
    if voc_head is not None:
        boxes = {options.head_label: voc_head, **boxes}
    rows, names = [], []
    checked_size: tuple[int, int] | None = None
    for frame in setting.frames:
        size = image_size(frame.image)
        if size != checked_size:
            _check_size(annotation, size, frame.image, boxes)
            checked_size = size
        gaze = targets[frame.target].centre
        if voc_head is not None:
            box = voc_head
        elif frame.keypoints is None:
            raise DataError(
                f"no OpenPose file for frame {frame.image.name} "
                f"({frame.image.stem}_keypoints.json in a json... folder of {frame.target}/)",
                frame.image,
            )
        else:
            try:
                box = _head_box(frame.keypoints, size, options)
            except MissingHeadError as error:
                if not options.skip_bad_frames:
                    raise _missing_head(error) from None
                # Its number stays taken, as in the lab's files: frame names match theirs.
                skipped.append(SkippedFrame(frame.keypoints, error.reason))
                continue
        rows.append(_Row(frame.image, box, gaze))
        names.append(f"{frame.counter:0{LAB_FRAME_DIGITS}d}")
    if not rows:
        raise DataError(
            f"every one of the {len(setting.frames)} kept frames was skipped: no head found",
            setting.path,
        )
    show = _lab_show(setting)
    split = "test" if setting.participant in options.test_participants else options.split
    annotation_file = output / "annotations" / split / show / setting.setting
    return _ClipPlan(
        show, setting.setting, annotation_file / f"{setting.participant}.txt", names, rows
    )


def _plan_lab(
    source: Path, output: Path, options: PrepareOptions, skipped: list[SkippedFrame]
) -> list[_ClipPlan]:
    settings = read_lab_layout(source, options.every)
    _check_test_participants(source, settings, options.test_participants)
    return [_plan_lab_setting(setting, output, options, skipped) for setting in settings]


def _plan_settings(
    source: Path, output: Path, options: PrepareOptions, skipped: list[SkippedFrame]
) -> list[_ClipPlan]:
    folders = _discover(source)
    targets = _targets_by_folder(folders, options)
    plans = []
    for folder in folders:
        rows = _plan_folder(folder, targets[(folder.session, folder.setting)], options, skipped)
        names = [f"{index:0{FRAME_DIGITS}d}" for index in range(1, len(rows) + 1)]
        annotation_file = (
            output / "annotations" / options.split / folder.session / folder.setting
        ) / f"{options.person}.txt"
        plans.append(_ClipPlan(folder.session, folder.setting, annotation_file, names, rows))
    return plans


def _number(value: float) -> str:
    """Pixels with at most two decimals and no trailing zeros: 45, 12.5, 24.65."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _annotation_text(names: list[str], rows: list[_Row]) -> str:
    lines = [HEADER]
    for name, row in zip(names, rows, strict=True):
        lines.append(",".join([name, *map(_number, row.box), *map(_number, row.gaze)]))
    return "\n".join(lines) + "\n"


def _lab_pixel(value: float) -> str:
    """A head box value as the lab wrote it: integers as integers (labelImg's, or floored)."""
    return str(int(value)) if float(value).is_integer() else _number(value)


def _lab_annotation_text(names: list[str], rows: list[_Row]) -> str:
    """The lab's lines: `00012, 206, 24, 300, 144, 350.5, 200.0` (gaze as Python writes floats)."""
    lines = [LAB_HEADER]
    for name, row in zip(names, rows, strict=True):
        fields = [name, *map(_lab_pixel, row.box), *(repr(float(v)) for v in row.gaze)]
        lines.append(LAB_SEPARATOR.join(fields))
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
    skipped: list[SkippedFrame] = []
    plan = _plan_lab if options.layout == "lab" else _plan_settings
    plans = plan(source, output, options, skipped)
    destinations = {
        id(clip): [
            output / "images" / clip.session / clip.setting / f"{name}{row.source.suffix.lower()}"
            for name, row in zip(clip.names, clip.rows, strict=True)
        ]
        for clip in plans
    }
    existing = [
        path
        for clip in plans
        for path in [*destinations[id(clip)], clip.annotation_file]
        if path.exists() or path.is_symlink()
    ]
    if existing and not options.force:
        more = f" (and {len(existing) - 1} more output files)" if len(existing) > 1 else ""
        raise DataError(
            f"exists already{more}; pass force=True (--force) to overwrite", existing[0]
        )

    text = _lab_annotation_text if options.layout == "lab" else _annotation_text
    clips = []
    for clip in plans:
        written = destinations[id(clip)]
        written[0].parent.mkdir(parents=True, exist_ok=True)
        for row, destination in zip(clip.rows, written, strict=True):
            _place(row.source, destination, options.link)
        clip.annotation_file.parent.mkdir(parents=True, exist_ok=True)
        clip.annotation_file.write_text(text(clip.names, clip.rows), encoding="utf-8", newline="\n")
        clips.append(
            PreparedClip(
                session=clip.session,
                setting=clip.setting,
                annotation_file=clip.annotation_file,
                frames=tuple(written),
                sources=tuple(row.source for row in clip.rows),
            )
        )
        logger.info(
            "%s/%s: %d frames written to %s", clip.session, clip.setting, len(written), output
        )
    if skipped:
        logger.warning(
            "skipped %d frames without a usable head (skip_bad_frames), e.g. %s: %s",
            len(skipped),
            skipped[0].path,
            skipped[0].reason,
        )
    return PrepareReport(clips=tuple(clips), skipped=tuple(skipped))
