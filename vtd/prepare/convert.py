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
from dataclasses import dataclass
from pathlib import Path

from vtd.data.errors import DataError
from vtd.data.images import image_size
from vtd.prepare._checks import check_size, missing_head, options_head_box
from vtd.prepare._frame_files import frame_files, required_subfolders, source_subfolders
from vtd.prepare._lab import plan_lab
from vtd.prepare._openpose import MissingHeadError
from vtd.prepare._voc import read_voc
from vtd.prepare._write import annotation_text, lab_annotation_text, place
from vtd.prepare.options import (
    FRAME_DIGITS,
    OUT_OF_FRAME,
    TARGETS_COLUMNS,
    Box,
    ClipPlan,
    PreparedClip,
    PrepareOptions,
    PrepareReport,
    Row,
    SkippedFrame,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Folder:
    session: str
    setting: str
    path: Path


def _discover(source: Path) -> list[_Folder]:
    folders = []
    for session in source_subfolders(source, "no <session>/<setting> folders found"):
        settings = required_subfolders(session, "no <setting> folders in this session folder")
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
) -> list[Row]:
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
            check_size(annotation, size, frame, boxes)
            checked_size = size
        if voc_head is not None:
            rows.append(Row(frame, voc_head, gaze))
            continue
        keypoint_file = _keypoint_file(folder, frame, options)
        try:
            box = options_head_box(keypoint_file, size, options)
        except MissingHeadError as error:
            if not options.skip_bad_frames:
                raise missing_head(error) from None
            skipped.append(SkippedFrame(keypoint_file, error.reason))
            continue
        rows.append(Row(frame, box, gaze))
    if not rows:
        raise DataError(
            f"every one of the {len(frames)} kept frames was skipped: no head found", folder.path
        )
    return rows


def _plan_settings(
    source: Path, output: Path, options: PrepareOptions, skipped: list[SkippedFrame]
) -> list[ClipPlan]:
    folders = _discover(source)
    targets = _targets_by_folder(folders, options)
    plans = []
    for folder in folders:
        rows = _plan_folder(folder, targets[(folder.session, folder.setting)], options, skipped)
        names = [f"{index:0{FRAME_DIGITS}d}" for index in range(1, len(rows) + 1)]
        annotation_file = (
            output / "annotations" / options.split / folder.session / folder.setting
        ) / f"{options.person}.txt"
        plans.append(ClipPlan(folder.session, folder.setting, annotation_file, names, rows))
    return plans


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
    plan = plan_lab if options.layout == "lab" else _plan_settings
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

    text = lab_annotation_text if options.layout == "lab" else annotation_text
    clips = []
    for clip in plans:
        written = destinations[id(clip)]
        written[0].parent.mkdir(parents=True, exist_ok=True)
        for row, destination in zip(clip.rows, written, strict=True):
            place(row.source, destination, options.link)
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
