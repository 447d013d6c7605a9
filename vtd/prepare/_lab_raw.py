"""The lab's raw recordings, read as they lie on disk: which frames `prepare` keeps, and how named.

The layout the lab's scripts walk (`VTD_retrain/src/subsample_rename_annotate.py`)::

    <root>/<participant>/<session>/<setting>/
        <name>.xml                      one labelImg XML: the setting's object boxes (and `head`)
        <object>/                       one folder per gaze target, named as its box in the XML
            rgb_input/                  frames (.ppm): a folder whose name holds `rgb`, not `json`
                                        or `openpose`
            rgb_input_openpose_json/    OpenPose files `<frame stem>_keypoints.json`: a folder
                                        whose name holds `json`

What `read_lab_layout` returns, per setting: the frames kept, in order (object folders by name,
then their `rgb` folders by name, then the frames of each in natural order, every `every`-th
starting with the first, as the lab's `[::2]`), each with a counter that runs on across the
object folders of the setting (the lab's zero-padded frame names `00000`, `00001`, ...), its
OpenPose file (matched by frame stem) and its gaze target (the object folder's name).

A subfolder of a setting without any `rgb` folder (the lab's own `subsampled_frames` output, a
folder of XML files) is not an object: it is left out with a warning naming it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vtd.data.errors import DataError
from vtd.prepare._frame_files import (
    frame_files,
    required_subfolders,
    source_subfolders,
    subfolders,
)

logger = logging.getLogger(__name__)

KEYPOINTS_SUFFIX = "_keypoints"  # OpenPose names its files <image stem>_keypoints.json


@dataclass(frozen=True)
class LabFrame:
    counter: int  # position among the setting's kept frames: the lab's renamed frame number
    image: Path
    keypoints: Path | None  # its OpenPose file; None when the object folder has none for it
    target: str  # the object folder's name: the box in the XML that the participant looks at


@dataclass(frozen=True)
class LabSetting:
    participant: str
    session: str
    setting: str
    path: Path
    xml: Path
    frames: tuple[LabFrame, ...]


def _is_frames_folder(folder: Path) -> bool:
    name = folder.name.lower()
    return "rgb" in name and "json" not in name and "openpose" not in name


def _is_keypoints_folder(folder: Path) -> bool:
    return "json" in folder.name.lower()


def _keypoint_files(object_folder: Path) -> dict[str, Path]:
    """The object's OpenPose files by frame stem; one frame with two files is an error."""
    by_stem: dict[str, Path] = {}
    for folder in filter(_is_keypoints_folder, subfolders(object_folder)):
        for path in sorted(folder.glob("*.json")):
            stem = path.stem.removesuffix(KEYPOINTS_SUFFIX)
            if stem in by_stem:
                raise DataError(
                    f"frame {stem!r} has two OpenPose files: {by_stem[stem]} and {path.name}", path
                )
            by_stem[stem] = path
    return by_stem


def _one_xml(setting: Path) -> Path:
    found = sorted(path for path in setting.glob("*.xml") if path.is_file())
    if len(found) != 1:
        names = ", ".join(path.name for path in found) or "none"
        raise DataError(
            f"expected one labelImg XML file beside the object folders, found {len(found)} "
            f"({names})",
            setting,
        )
    return found[0]


def _read_setting(participant: str, session: str, setting: Path, every: int) -> LabSetting:
    objects, ignored = [], []
    for folder in subfolders(setting):
        frame_folders = [child for child in subfolders(folder) if _is_frames_folder(child)]
        (objects if frame_folders else ignored).append((folder, frame_folders))
    if ignored:
        logger.warning(
            "%s: left out %d folder(s) without an rgb... frames folder (not objects): %s",
            setting,
            len(ignored),
            ", ".join(folder.name for folder, _ in ignored),
        )
    if not objects:
        if any(_is_frames_folder(child) for child in subfolders(setting)):
            raise DataError(
                "frames folders directly in the setting: expected "
                "<participant>/<session>/<setting>/<object>/rgb.../",
                setting,
            )
        raise DataError("no <object>/rgb... folders in this setting folder", setting)
    frames: list[LabFrame] = []
    for folder, frame_folders in objects:
        keypoints = _keypoint_files(folder)
        for frame_folder in frame_folders:
            for image in frame_files(frame_folder)[::every]:
                frames.append(LabFrame(len(frames), image, keypoints.get(image.stem), folder.name))
    return LabSetting(participant, session, setting.name, setting, _one_xml(setting), tuple(frames))


def read_lab_layout(root: Path, every: int) -> list[LabSetting]:
    """Every setting under `root`, in name order; a level without folders is an error."""
    participants = source_subfolders(
        root, "no <participant>/<session>/<setting>/<object> folders found"
    )
    settings = []
    for participant in participants:
        sessions = required_subfolders(
            participant, "no <session> folders in this participant folder"
        )
        for session in sessions:
            settings.extend(
                _read_setting(participant.name, session.name, setting, every)
                for setting in required_subfolders(
                    session, "no <setting> folders in this session folder"
                )
            )
    return settings
