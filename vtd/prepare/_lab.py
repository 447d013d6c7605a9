"""The lab layout's plan (`layout="lab"`, see `vtd.prepare.convert`): one clip per setting
of the lab's raw recordings (`vtd.prepare._lab_raw`), frames numbered as the lab's files."""

from __future__ import annotations

from pathlib import Path

from vtd.data.errors import DataError
from vtd.data.images import image_size
from vtd.prepare._checks import check_size, missing_head, options_head_box
from vtd.prepare._lab_raw import LabSetting, read_lab_layout
from vtd.prepare._openpose import MissingHeadError
from vtd.prepare._voc import read_voc
from vtd.prepare.options import LAB_FRAME_DIGITS, ClipPlan, PrepareOptions, Row, SkippedFrame


def lab_show(setting: LabSetting) -> str:
    """The output show folder of a lab setting: participant and session, which alone repeats."""
    return f"{setting.participant}_{setting.session}"


def check_test_participants(source: Path, settings: list[LabSetting], names: tuple[str, ...]):
    found = sorted({setting.participant for setting in settings})
    unknown = [name for name in names if name not in found]
    if unknown:
        raise DataError(
            f"test participant(s) {', '.join(unknown)} not found; participants here: "
            f"{', '.join(found)}",
            source,
        )


def plan_lab_setting(
    setting: LabSetting, output: Path, options: PrepareOptions, skipped: list[SkippedFrame]
) -> ClipPlan:
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
            check_size(annotation, size, frame.image, boxes)
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
                box = options_head_box(frame.keypoints, size, options)
            except MissingHeadError as error:
                if not options.skip_bad_frames:
                    raise missing_head(error) from None
                # Its number stays taken, as in the lab's files: frame names match theirs.
                skipped.append(SkippedFrame(frame.keypoints, error.reason))
                continue
        rows.append(Row(frame.image, box, gaze))
        names.append(f"{frame.counter:0{LAB_FRAME_DIGITS}d}")
    if not rows:
        raise DataError(
            f"every one of the {len(setting.frames)} kept frames was skipped: no head found",
            setting.path,
        )
    show = lab_show(setting)
    split = "test" if setting.participant in options.test_participants else options.split
    annotation_file = output / "annotations" / split / show / setting.setting
    return ClipPlan(
        show, setting.setting, annotation_file / f"{setting.participant}.txt", names, rows
    )


def plan_lab(
    source: Path, output: Path, options: PrepareOptions, skipped: list[SkippedFrame]
) -> list[ClipPlan]:
    settings = read_lab_layout(source, options.every)
    check_test_participants(source, settings, options.test_participants)
    return [plan_lab_setting(setting, output, options, skipped) for setting in settings]
