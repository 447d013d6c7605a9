"""What `prepare` is asked (`PrepareOptions`, the CLI's flags one to one), what it plans for
each clip (`ClipPlan`, its `Row`s) and what it reports; the output files' fixed formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vtd.data.formats._oa import COLUMNS
from vtd.prepare._openpose import HeadBoxRule

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
class Row:
    source: Path
    box: Box
    gaze: tuple[float, float]


@dataclass(frozen=True)
class ClipPlan:
    session: str  # the output's show folder
    setting: str
    annotation_file: Path
    names: list[str]  # the frame names written, one per row
    rows: list[Row]
