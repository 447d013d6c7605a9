"""`vtd-sweep prepare --layout lab`: the lab's raw recordings to the lab's annotation files.

The miniature below is written as the lab's tools write: labelImg's full Pascal-VOC XML (tab
indented, no XML declaration) with the `head` box drawn LAST, OpenPose 1.7 BODY_25 JSON files
`<frame>_keypoints.json` in `<object>/rgb_input_openpose_json/`, P6 .ppm frames of 640x480 in
`<object>/rgb_input/`, named `00000000.ppm`, ... as the robot's dumper names them.

Expected head boxes, by hand, with the lab's rule (DESIGN.md; W = 640, H = 480). The first
person of each file is the participant; a second, more confident person stands at x ~ 500.

FULL: nose (321.3, 201.7), right eye (306.2, 186.9), left eye (337.5, 187.4), right ear
  (291.6, 196.1), left ear (352.9, 197.3) at confidence 0.04 (present: (x, y) != (0, 0)).
  cy = 969.4 / 5 = 193.88; x 291.6..352.9, range 61.3: min_x = 291.6 - 12.26 = 279.34;
  max_x = 352.9 + 0.2 (352.9 - 279.34) = 352.9 + 14.712 = 367.612; width 88.272, 2/3 of it
  58.848: y 135.032..252.728. Floored: (279, 135, 367, 252).
NO_RIGHT_EAR: FULL with the right ear (0, 0, 0). cy = 773.3 / 4 = 193.325; x 306.2..352.9,
  range 46.7: min_x = 306.2 - 9.34 = 296.86; max_x = 352.9 + 0.2 * 56.04 = 364.108; width
  67.248, 2/3 of it 44.832: y 148.493..238.157. Floored: (296, 148, 364, 238).
TOP: nose (120.4, 30.2), eyes (110.3, 18.6), (131.1, 19.0), right ear (100.7, 25.5), left ear
  missing. cy = 93.3 / 4 = 23.325; x 100.7..131.1, range 30.4: min_x = 100.7 - 6.08 = 94.62;
  max_x = 131.1 + 0.2 * 36.48 = 138.396; width 43.776, 2/3 of it 29.184: y -5.859..52.509,
  clamped to 0. Floored: (94, 0, 138, 52).

Gaze: centre of the object's box: pringles (400, 250, 461, 330) -> (430.5, 290.0); mustard
(150, 260, 203, 345) -> (176.5, 302.5). The labelImg head box: (300, 140, 371, 246).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vtd.cli import main
from vtd.data import SourceSpec, build_index
from vtd.data.errors import DataError
from vtd.prepare._openpose import MissingHeadError, lab_head_box
from vtd.prepare.convert import prepare
from vtd.prepare.options import PrepareOptions

SIZE = (640, 480)
PARTICIPANTS = ("Gabriele", "Shiva")
SESSION, SETTING = "session_1", "pringles-mustard"
RAW_FRAMES = 5  # per object folder; every 2nd kept: raw frames 0, 2, 4
LAB_HEADER = "frame x_min y_min x_max y_max gaze_x gaze_y"

FULL = [(321.3, 201.7, 0.91), (306.2, 186.9, 0.87), (337.5, 187.4, 0.89), (291.6, 196.1, 0.62)]
FULL_LEFT_EAR = (352.9, 197.3, 0.04)
NO_RIGHT_EAR = [*FULL[:3], (0.0, 0.0, 0.0)]
TOP = [(120.4, 30.2, 0.9), (110.3, 18.6, 0.8), (131.1, 19.0, 0.85), (100.7, 25.5, 0.7)]
MISSING = (0.0, 0.0, 0.0)
FULL_BOX, NO_RIGHT_EAR_BOX, TOP_BOX = "279, 135, 367, 252", "296, 148, 364, 238", "94, 0, 138, 52"
PRINGLES_GAZE, MUSTARD_GAZE = "430.5, 290.0", "176.5, 302.5"
VOC_HEAD = "300, 140, 371, 246"

OBJECTS = (("pringles", (400, 250, 461, 330)), ("mustard", (150, 260, 203, 345)))
HEAD = ("head", (300, 140, 371, 246))


def labelimg_xml(folder: str, filename: str, path: str, objects: list[tuple]) -> str:
    """Pascal VOC as labelImg's PascalVocWriter writes it: lxml pretty print, tabs."""
    parts = [
        "<annotation>",
        f"\t<folder>{folder}</folder>",
        f"\t<filename>{filename}</filename>",
        f"\t<path>{path}</path>",
        "\t<source>",
        "\t\t<database>Unknown</database>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{SIZE[0]}</width>",
        f"\t\t<height>{SIZE[1]}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for name, (xmin, ymin, xmax, ymax) in objects:
        parts += [
            "\t<object>",
            f"\t\t<name>{name}</name>",
            "\t\t<pose>Unspecified</pose>",
            "\t\t<truncated>0</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{xmin}</xmin>",
            f"\t\t\t<ymin>{ymin}</ymin>",
            f"\t\t\t<xmax>{xmax}</xmax>",
            f"\t\t\t<ymax>{ymax}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    return "\n".join([*parts, "</annotation>"]) + "\n"


def _pose(head: list[tuple], left_ear: tuple, body_x: float) -> list[float]:
    """75 BODY_25 values: the head joints given, a neck and hips, every other joint (0, 0, 0)."""
    joints = [MISSING] * 25
    joints[0], joints[15], joints[16], joints[17] = head
    joints[18] = left_ear
    joints[1] = (body_x, 260.0, 0.8)  # neck
    joints[8] = (body_x, 420.0, 0.7)  # mid hip
    return [value for joint in joints for value in joint]


def openpose_json(people: list[list[float]]) -> str:
    """One frame as OpenPose 1.7 writes it with --write_json (BODY_25, no face or hands)."""
    empty = {
        "face_keypoints_2d": [],
        "hand_left_keypoints_2d": [],
        "hand_right_keypoints_2d": [],
        "pose_keypoints_3d": [],
        "face_keypoints_3d": [],
        "hand_left_keypoints_3d": [],
        "hand_right_keypoints_3d": [],
    }
    content = {
        "version": 1.3,
        "people": [{"person_id": [-1], "pose_keypoints_2d": pose, **empty} for pose in people],
    }
    return json.dumps(content, separators=(",", ":"))


# The second person: further right, more confident than the participant; never annotated.
BYSTANDER = _pose(
    [(505.0, 150.0, 0.95), (495.0, 140.0, 0.95), (515.0, 140.0, 0.95), (485.0, 145.0, 0.95)],
    (525.0, 145.0, 0.95),
    505.0,
)


def _keypoints_of(target: str, raw: int, headless: bool) -> str:
    if raw % 2:  # frames the lab's [::2] leaves out: a file no head box could come from
        return openpose_json([])
    if headless:  # a person whose head OpenPose did not find: the lab wrote None
        return openpose_json([_pose([MISSING] * 4, MISSING, 320.0), BYSTANDER])
    if target == "mustard":
        return openpose_json([_pose(TOP, MISSING, 120.0), BYSTANDER])
    head = NO_RIGHT_EAR if raw == 2 else FULL
    return openpose_json([_pose(head, FULL_LEFT_EAR, 320.0), BYSTANDER])


def write_lab_miniature(root: Path, headless: tuple[str, str, int] | None = None) -> Path:
    """`<root>/<participant>/session_1/pringles-mustard/` as the lab's recordings lie on disk.

    Every frame a flat colour: red = participant, green = object, blue = raw frame number.
    `headless` = (participant, object, raw frame): that frame's person has no head keypoint.
    """
    for p_index, participant in enumerate(PARTICIPANTS):
        setting = root / participant / SESSION / SETTING
        for o_index, (target, _) in enumerate(OBJECTS):
            frames = setting / target / "rgb_input"
            keypoints = setting / target / "rgb_input_openpose_json"
            frames.mkdir(parents=True)
            keypoints.mkdir()
            for raw in range(RAW_FRAMES):
                colour = (50 + p_index, 100 + o_index, raw)
                Image.new("RGB", SIZE, colour).save(frames / f"{raw:08d}.ppm")
                is_headless = headless == (participant, target, raw)
                (keypoints / f"{raw:08d}_keypoints.json").write_text(
                    _keypoints_of(target, raw, is_headless)
                )
        # The head drawn last: the lab's script would have taken pringles' box as the head.
        xml = labelimg_xml(
            "rgb_input",
            "00000000.ppm",
            f"/home/icub/ObjectAttention/{participant}/{SESSION}/{SETTING}/pringles/rgb_input/"
            "00000000.ppm",
            [*OBJECTS, HEAD],
        )
        (setting / "00000000.xml").write_text(xml, encoding="utf-8")
    return root


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _annotation(output: Path, participant: str, split: str) -> Path:
    return (
        output / "annotations" / split / f"{participant}_{SESSION}" / SETTING / f"{participant}.txt"
    )


def _colour(path: Path) -> tuple[int, int, int]:
    with Image.open(path) as image:
        return image.getpixel((0, 0))


def _prepare(raw: Path, output: Path, *flags: str) -> int:
    return main(["prepare", str(raw), str(output), "--layout", "lab", "--every", "2", *flags])


OPENPOSE_LINES = [
    LAB_HEADER,
    # mustard's frames come first (object folders by name), then pringles', counters run on
    f"00000, {TOP_BOX}, {MUSTARD_GAZE}",
    f"00001, {TOP_BOX}, {MUSTARD_GAZE}",
    f"00002, {TOP_BOX}, {MUSTARD_GAZE}",
    f"00003, {FULL_BOX}, {PRINGLES_GAZE}",
    f"00004, {NO_RIGHT_EAR_BOX}, {PRINGLES_GAZE}",
    f"00005, {FULL_BOX}, {PRINGLES_GAZE}",
]


def test_openpose_boxes_are_the_labs_to_the_pixel(tmp_path: Path) -> None:
    raw, output = write_lab_miniature(tmp_path / "raw"), tmp_path / "out"
    assert (
        _prepare(raw, output, "--head-source", "openpose", "--test-participants", "Gabriele") == 0
    )
    assert _lines(_annotation(output, "Shiva", "train")) == OPENPOSE_LINES
    assert _lines(_annotation(output, "Gabriele", "test")) == OPENPOSE_LINES
    assert not (output / "annotations" / "train" / f"Gabriele_{SESSION}").exists()
    images = sorted((output / "images" / f"Shiva_{SESSION}" / SETTING).iterdir())
    assert [image.name for image in images] == [f"{n:05d}.ppm" for n in range(6)]
    # Shiva (red 51): mustard (green 101) raw frames 0, 2, 4, then pringles' (green 100).
    assert [_colour(image) for image in images] == [
        (51, green, raw_frame) for green in (101, 100) for raw_frame in (0, 2, 4)
    ]
    source = raw / "Shiva" / SESSION / SETTING / "pringles" / "rgb_input" / "00000004.ppm"
    assert images[5].read_bytes() == source.read_bytes()


def test_labelimg_head_is_the_box_named_head_though_drawn_last(tmp_path: Path) -> None:
    raw, output = write_lab_miniature(tmp_path / "raw"), tmp_path / "out"
    assert _prepare(raw, output, "--head-source", "voc") == 0
    lines = _lines(_annotation(output, "Shiva", "train"))
    assert lines[0] == LAB_HEADER
    assert lines[1:] == [f"{n:05d}, {VOC_HEAD}, {MUSTARD_GAZE}" for n in range(3)] + [
        f"{n:05d}, {VOC_HEAD}, {PRINGLES_GAZE}" for n in range(3, 6)
    ]
    # Not the first object's box (pringles, 400, 250, 461, 330), as the lab's script took it.
    assert all(", 400, 250, 461, 330, " not in line for line in lines)


def test_the_centred_rule_stays_an_option(tmp_path: Path) -> None:
    raw, output = write_lab_miniature(tmp_path / "raw"), tmp_path / "out"
    flags = ("--head-source", "openpose", "--head-box", "centred")
    assert _prepare(raw, output, *flags) == 0
    # Centred: the most confident person (the bystander), confident keypoints x 485..525,
    # y 140..150: span 40, centre (505, 145); 52 wide, 62.4 high.
    assert _lines(_annotation(output, "Shiva", "train"))[1] == (
        f"00000, 479, 113.8, 531, 176.2, {MUSTARD_GAZE}"
    )


def test_frame_without_head_is_one_line_or_a_skip_that_keeps_the_labs_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = write_lab_miniature(tmp_path / "raw", headless=("Shiva", "pringles", 2))
    output = tmp_path / "out"
    bad = raw / "Shiva" / SESSION / SETTING / "pringles" / "rgb_input_openpose_json"
    assert _prepare(raw, output, "--head-source", "openpose") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{bad / '00000002_keypoints.json'}: no head keypoint" in err[0]
    assert "--skip-bad-frames" in err[0]
    assert not output.exists()

    assert _prepare(raw, output, "--head-source", "openpose", "--skip-bad-frames") == 0
    assert "skipped 1 bad frame(s)" in " ".join(capsys.readouterr().out.split())
    lines = _lines(_annotation(output, "Shiva", "train"))
    # The lab wrote `00004, None, None, None, None, 430.5, 290.0`: we leave the frame out and
    # keep the others' names, so that they still match the lab's.
    assert lines == [line for line in OPENPOSE_LINES if not line.startswith("00004")]
    images = output / "images" / f"Shiva_{SESSION}" / SETTING
    assert sorted(path.name for path in images.iterdir()) == [
        f"{n:05d}.ppm" for n in (0, 1, 2, 3, 5)
    ]


def test_lab_layout_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, output = write_lab_miniature(tmp_path / "raw"), tmp_path / "out"
    assert _prepare(raw, output, "--test-participants", "Shiva,Giulia") == 2
    assert "test participant(s) Giulia not found; participants here: Gabriele, Shiva" in (
        capsys.readouterr().err
    )
    assert _prepare(raw, output, "--target", "cup") == 2
    assert "the lab layout takes no target" in capsys.readouterr().err
    setting = raw / "Shiva" / SESSION / SETTING
    (setting / "mustard").rename(setting / "ketchup")
    assert _prepare(raw, output) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].endswith(
        "00000000.xml: no object named 'ketchup'; objects here: head, mustard, pringles"
    )
    assert not output.exists()


def test_the_index_reads_the_labs_files_back(tmp_path: Path) -> None:
    raw, output = write_lab_miniature(tmp_path / "raw"), tmp_path / "out"
    assert (
        _prepare(raw, output, "--head-source", "openpose", "--test-participants", "Gabriele") == 0
    )
    clips = build_index(SourceSpec(root=output), smoothing_window=1)
    assert [(clip.subset, clip.show, clip.clip, clip.person) for clip in clips] == [
        ("test", f"Gabriele_{SESSION}", SETTING, "Gabriele"),
        ("train", f"Shiva_{SESSION}", SETTING, "Shiva"),
    ]
    assert clips[1].boxes.tolist()[3:5] == [[279, 135, 367, 252], [296, 148, 364, 238]]
    assert clips[1].gaze.tolist()[0] == [176.5, 302.5]


def _one_person(head: list[tuple], left_ear: tuple = MISSING) -> np.ndarray:
    return np.asarray(_pose(head, left_ear, 320.0)).reshape(25, 3)


def test_lab_rule_edges_as_the_labs_code_has_them() -> None:
    where = Path("frame_keypoints.json")
    # Mean y 479.6 lies in [H - 1, H): the lab's clamp (only >= H) leaves it. x 100..110, range
    # 10: min_x 98, max_x 110 + 0.2 * 12 = 112.4, width 14.4, 2/3 of it 9.6: y 470.0..489.2.
    low = [(100.0, 479.2, 0.9), (110.0, 480.0, 0.9), MISSING, MISSING]
    assert lab_head_box(_one_person(low), SIZE, where) == (98, 470, 112, 480)
    # One keypoint: a box of no size, which the lab wrote and the reader rejects.
    with pytest.raises(MissingHeadError, match="has no size: 1 head keypoint"):
        lab_head_box(_one_person([(100.0, 200.0, 0.9), MISSING, MISSING, MISSING]), SIZE, where)
    # A keypoint at (0, y) is present: only (0, 0) is missing. x 0..20: min_x -4 -> 0.
    edge = [(0.0, 200.0, 0.9), (20.0, 200.0, 0.9), MISSING, MISSING]
    assert lab_head_box(_one_person(edge), SIZE, where) == (0, 180, 24, 219)


def test_folders_that_are_not_objects_are_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw, output = write_lab_miniature(tmp_path / "raw"), tmp_path / "out"
    setting = raw / "Shiva" / SESSION / SETTING
    # What the lab's own script left in a setting it had processed: frames, not an object.
    (setting / "subsampled_frames").mkdir()
    Image.new("RGB", SIZE).save(setting / "subsampled_frames" / "00000.ppm")
    options = PrepareOptions(layout="lab", head_source="voc", every=2)
    with caplog.at_level(logging.WARNING, logger="vtd.prepare._lab_raw"):
        report = prepare(raw, output, options)
    assert "left out 1 folder(s) without an rgb... frames folder (not objects): " in caplog.text
    assert "subsampled_frames" in caplog.text
    assert [len(clip.frames) for clip in report.clips] == [6, 6]

    # Objects one level too high: the rgb folder directly in the setting is named as such.
    flat = raw / "Gabriele" / SESSION / SETTING
    for target, _ in OBJECTS:
        shutil.rmtree(flat / target)
    (flat / "rgb_input").mkdir()
    with pytest.raises(DataError, match="frames folders directly in the setting"):
        prepare(raw, tmp_path / "out2", options)
