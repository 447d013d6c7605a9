"""`prepare`: labelImg XML and OpenPose JSON fixtures to ObjectAttention annotation files.

Expected values are worked out by hand from the fixtures in tests/data/prepare/:
- labelimg_setting.xml (64x48): head (24, 10, 38, 26); cup (40, 30, 50, 40), centre (45, 35);
  bottle (5, 20, 13, 44), centre (9, 32); book (14, 36, 29, 45).
- openpose_frame_keypoints.json (with `head_box="centred"`; the lab's rule, the default, is
  tested in test_prepare_lab.py): a weak detection (nose and right eye at 0.3) listed first, then
  the participant with nose (32, 20), right eye (29, 17), left eye (35, 17), right ear (26, 18)
  confident and the left ear at 0.05 (ignored at the default 0.1). Span: x 26..35 = 9 (y 17..20
  = 3), centre (30.5, 18.5); width 1.3 * 9 = 11.7, height 1.2 * 11.7 = 14.04, so the box is
  (24.65, 11.48, 36.35, 25.52).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from vtd.data import SourceSpec, build_index
from vtd.data.errors import DataError
from vtd.prepare.convert import prepare, read_targets
from vtd.prepare.options import PrepareOptions

FIXTURES = Path(__file__).parent / "data" / "prepare"
XML = (FIXTURES / "labelimg_setting.xml").read_text(encoding="utf-8")
HEADER = "frame,x_min,y_min,x_max,y_max,gaze_x,gaze_y"
OPENPOSE_BOX = "24.65,11.48,36.35,25.52"
FOLDERS = (("P01", "setting1"), ("P01", "setting2"), ("P02", "setting1"))


def _write_frames(folder: Path, count: int, suffix: str = ".ppm", size: tuple = (64, 48)) -> None:
    """Frames `frame_1 ... frame_<count>`, each a flat colour that encodes its number."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, count + 1):
        Image.new("RGB", size, (number, 100, 200)).save(folder / f"frame_{number}{suffix}")


def _source(root: Path, frames: int = 12, xml: str | None = XML) -> Path:
    source = root / "raw"
    for session, setting in FOLDERS:
        folder = source / session / setting
        _write_frames(folder, frames)
        if xml is not None:
            (folder / "frame_1.xml").write_text(xml, encoding="utf-8")
    return source


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _frame_number(path: Path) -> int:
    """Which source frame an output image is (its colour's red value)."""
    with Image.open(path) as image:
        return image.getpixel((0, 0))[0]


def _annotation(output: Path, session: str = "P01", setting: str = "setting1") -> Path:
    return output / "annotations" / "train" / session / setting / "person.txt"


def _keypoints(folder: Path, fixture: str = "openpose_frame_keypoints.json", dx: float = 0) -> None:
    """One OpenPose file per frame of `folder`, the fixture's x coordinates moved by `dx` * n."""
    content = json.loads((FIXTURES / fixture).read_text(encoding="utf-8"))
    for frame in sorted(folder.glob("frame_*.ppm")):
        number = int(frame.stem.split("_")[1])
        shifted = json.loads(json.dumps(content))
        for person in shifted["people"]:
            values = person["pose_keypoints_2d"]
            for index in range(0, len(values), 3):
                if values[index + 2] > 0:
                    values[index] += dx * (number - 1)
        (folder / f"{frame.stem}_keypoints.json").write_text(json.dumps(shifted))


# --- labelImg XML ------------------------------------------------------------------------------


def test_voc_box_and_target_stand_for_every_frame_of_the_folder(tmp_path: Path) -> None:
    source, output = _source(tmp_path), tmp_path / "out"
    report = prepare(source, output, PrepareOptions(target="cup"))
    assert report.frames_written == 36 and report.skipped == ()
    for session, setting in FOLDERS:
        lines = _lines(_annotation(output, session, setting))
        assert lines[0] == HEADER
        assert lines[1:] == [f"{n:06d},24,10,38,26,45,35" for n in range(1, 13)]
        images = sorted((output / "images" / session / setting).iterdir())
        assert [image.name for image in images] == [f"{n:06d}.ppm" for n in range(1, 13)]
        # Natural order: frame_2 comes before frame_10; files are copies of their source.
        assert [_frame_number(image) for image in images] == list(range(1, 13))
        assert images[9].read_bytes() == (source / session / setting / "frame_10.ppm").read_bytes()
        assert not images[0].is_symlink()


def test_subsampling_keeps_every_kth_frame_renamed_in_sequence(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=10), tmp_path / "out"
    report = prepare(source, output, PrepareOptions(target="cup", every=3, split="test"))
    clip = report.clips[0]
    assert [path.name for path in clip.sources] == [
        "frame_1.ppm",
        "frame_4.ppm",
        "frame_7.ppm",
        "frame_10.ppm",
    ]
    assert [path.name for path in clip.frames] == [
        "000001.ppm",
        "000002.ppm",
        "000003.ppm",
        "000004.ppm",
    ]
    assert [_frame_number(path) for path in clip.frames] == [1, 4, 7, 10]
    annotation = output / "annotations" / "test" / "P01" / "setting1" / "person.txt"
    assert clip.annotation_file == annotation
    assert [line.split(",")[0] for line in _lines(annotation)[1:]] == [
        "000001",
        "000002",
        "000003",
        "000004",
    ]


def test_targets_file_names_each_folders_target_and_empty_means_out_of_frame(
    tmp_path: Path,
) -> None:
    source, output = _source(tmp_path, frames=2), tmp_path / "out"
    prepare(source, output, PrepareOptions(targets=FIXTURES / "targets.csv"))
    assert _lines(_annotation(output, "P01", "setting1"))[1] == "000001,24,10,38,26,45,35"
    assert _lines(_annotation(output, "P01", "setting2"))[1] == "000001,24,10,38,26,9,32"
    assert _lines(_annotation(output, "P02", "setting1"))[1] == "000001,24,10,38,26,-1,-1"


def test_frames_can_be_linked_instead_of_copied(tmp_path: Path) -> None:
    source = _source(tmp_path, frames=3)
    hard = prepare(source, tmp_path / "hard", PrepareOptions(target="cup", link="hardlink"))
    assert hard.clips[0].frames[1].samefile(source / "P01" / "setting1" / "frame_2.ppm")
    soft = prepare(source, tmp_path / "soft", PrepareOptions(target="cup", link="symlink"))
    assert soft.clips[0].frames[1].is_symlink()
    assert _frame_number(soft.clips[0].frames[1]) == 2


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=3), tmp_path / "out"
    prepare(source, output, PrepareOptions(target="cup"))
    annotation = _annotation(output)
    with pytest.raises(
        DataError, match=r"exists already \(and 11 more output files\).*force"
    ) as info:
        prepare(source, output, PrepareOptions(target="bottle"))
    assert info.value.path == output / "images" / "P01" / "setting1" / "000001.ppm"
    assert _lines(annotation)[1].endswith(",45,35")
    prepare(source, output, PrepareOptions(target="bottle", force=True))
    assert _lines(annotation)[1].endswith(",9,32")
    # Forcing also replaces links, never writing through them into the source frames.
    prepare(source, output, PrepareOptions(target="cup", link="symlink", force=True))
    prepare(source, output, PrepareOptions(target="cup", force=True))
    assert not (output / "images" / "P01" / "setting1" / "000001.ppm").is_symlink()
    assert _frame_number(source / "P01" / "setting1" / "frame_1.ppm") == 1


def test_one_existing_file_is_named_alone(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=1), tmp_path / "out"
    annotation = _annotation(output, "P02", "setting1")
    annotation.parent.mkdir(parents=True)
    annotation.write_text("mine\n")
    with pytest.raises(DataError, match=r"person.txt: exists already; pass force"):
        prepare(source, output, PrepareOptions(target="cup"))
    assert annotation.read_text() == "mine\n"
    assert not (output / "images").exists()


# --- OpenPose JSON -----------------------------------------------------------------------------


def test_openpose_head_box_per_frame_and_gaze_from_the_xml(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=3), tmp_path / "out"
    for session, setting in FOLDERS:
        _keypoints(source / session / setting, dx=1.0)
    prepare(
        source, output, PrepareOptions(target="cup", head_source="openpose", head_box="centred")
    )
    # The box follows the keypoints: one pixel to the right per frame.
    assert _lines(_annotation(output))[1:] == [
        f"000001,{OPENPOSE_BOX},45,35",
        "000002,25.65,11.48,37.35,25.52,45,35",
        "000003,26.65,11.48,38.35,25.52,45,35",
    ]


def test_openpose_box_rule_options_and_keypoints_folder(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=1), tmp_path / "out"
    keypoints = tmp_path / "keypoints"
    for session, setting in FOLDERS:
        (keypoints / session / setting).mkdir(parents=True)
        shutil.copy(
            FIXTURES / "openpose_frame_keypoints.json",
            keypoints / session / setting / "frame_1_keypoints.json",
        )
    options = PrepareOptions(
        targets=FIXTURES / "targets.csv",
        head_source="openpose",
        head_box="centred",
        keypoints=keypoints,
        head_scale=1.0,
        head_aspect=1.0,
        min_confidence=0.01,
    )
    prepare(source, output, options)
    # With the left ear (38, 18) counted: x 26..38, span 12, centre (32, 18.5), a 12x12 box.
    assert _lines(_annotation(output))[1] == "000001,26,12.5,38,24.5,45,35"
    assert _lines(_annotation(output, "P02", "setting1"))[1] == "000001,26,12.5,38,24.5,-1,-1"


def test_openpose_folder_looking_out_of_frame_needs_no_xml(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=2, xml=None), tmp_path / "out"
    for session, setting in FOLDERS:
        _keypoints(source / session / setting)
    targets = tmp_path / "targets.csv"
    targets.write_text("session,setting,target\nP01,setting1,\nP01,setting2,\nP02,setting1,\n")
    prepare(
        source, output, PrepareOptions(targets=targets, head_source="openpose", head_box="centred")
    )
    assert _lines(_annotation(output))[1:] == [f"00000{n},{OPENPOSE_BOX},-1,-1" for n in (1, 2)]


def test_openpose_head_box_is_clipped_to_the_image(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=1), tmp_path / "out"
    for session, setting in FOLDERS:
        _keypoints(source / session / setting)
    options = PrepareOptions(target="cup", head_source="openpose", head_box="centred", head_scale=6)
    prepare(source, output, options)
    # Width 54 and height 64.8 around (30.5, 18.5) reach beyond the 64x48 frame on three sides.
    assert _lines(_annotation(output))[1] == "000001,3.5,0,57.5,48,45,35"


@pytest.mark.parametrize(
    ("fixture", "reason"),
    [
        ("openpose_no_person_keypoints.json", "no person detected"),
        ("openpose_no_head_keypoints.json", "no person with two or more head keypoints"),
    ],
)
def test_openpose_frame_without_a_head_is_an_error_or_a_counted_skip(
    tmp_path: Path, fixture: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    source, output = _source(tmp_path, frames=4), tmp_path / "out"
    for session, setting in FOLDERS:
        _keypoints(source / session / setting)
    bad = source / "P01" / "setting2" / "frame_3_keypoints.json"
    shutil.copy(FIXTURES / fixture, bad)
    options = PrepareOptions(target="cup", head_source="openpose", head_box="centred")
    with pytest.raises(DataError, match=reason) as info:
        prepare(source, output, options)
    assert info.value.path == bad
    assert not output.exists()

    with caplog.at_level(logging.WARNING, logger="vtd.prepare.convert"):
        report = prepare(source, output, options.model_copy(update={"skip_bad_frames": True}))
    assert [(item.path, reason in item.reason) for item in report.skipped] == [(bad, True)]
    assert "skipped 1 frames" in caplog.text
    clip = next(clip for clip in report.clips if clip.setting == "setting2")
    assert [path.name for path in clip.sources] == ["frame_1.ppm", "frame_2.ppm", "frame_4.ppm"]
    lines = _lines(_annotation(output, "P01", "setting2"))
    assert [line.split(",")[0] for line in lines[1:]] == ["000001", "000002", "000003"]


def test_every_frame_skipped_is_an_error(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=2), tmp_path / "out"
    for session, setting in FOLDERS:
        _keypoints(source / session / setting, fixture="openpose_no_person_keypoints.json")
    options = PrepareOptions(target="cup", head_source="openpose", skip_bad_frames=True)
    with pytest.raises(DataError, match="every one of the 2 kept frames was skipped"):
        prepare(source, output, options)


# --- bad input ---------------------------------------------------------------------------------


def _prepare_fails(source: Path, tmp_path: Path, error: str, **options: object) -> None:
    """`prepare` of `source` for the target cup (and `options`) raises a DataError that
    matches `error`."""
    with pytest.raises(DataError, match=error):
        prepare(source, tmp_path / "out", PrepareOptions(**{"target": "cup", **options}))


def _prepare_with_xml(tmp_path: Path, xml: str, **options: object) -> None:
    source = _source(tmp_path, frames=2)
    (source / "P01" / "setting2" / "frame_1.xml").write_text(xml, encoding="utf-8")
    prepare(source, tmp_path / "out", PrepareOptions(**{"target": "cup", **options}))


def test_unknown_target_lists_the_objects_present(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        prepare(_source(tmp_path, frames=1), tmp_path / "out", PrepareOptions(target="mug"))
    assert str(info.value).endswith(
        "P01/setting1/frame_1.xml: no object named 'mug'; objects here: book, bottle, cup, head"
    )
    assert not (tmp_path / "out").exists()


# Each case edits the one good XML file (every edited text stands in it once) and names the
# error prepare must raise: the file, and the line where one is known.
@pytest.mark.parametrize(
    ("edits", "error"),
    [
        (
            [("<name>head</name>", "<name>face</name>")],
            r"setting2/frame_1.xml: no object named 'head'; objects here: book, bottle, cup, fa",
        ),
        (
            [("<name>book</name>", "<name>head</name>")],
            r"frame_1.xml:50: 2 objects named 'head' \(lines 14, 50\)",
        ),
        (
            [
                (
                    "</bndbox>\n\t</object>\n\t<object>\n\t\t<name>bottle",
                    "</bndbox>\n\t<object>\n\t\t<name>bottle",
                )
            ],
            r"setting2/frame_1.xml:\d+: not well-formed XML \(mismatched tag",
        ),
        (
            [("<xmin>40</xmin>", "<xmin>55</xmin>")],
            r"frame_1.xml:31: box of 'cup' is empty or reversed: xmin 55, xmax 50",
        ),
        (
            [("<xmax>50</xmax>", "<xmax>70</xmax>")],
            r"frame_1.xml:31: box of 'cup' \(40, 30, 70, 40\) lies outside the 64x48 image",
        ),
        (
            [("<ymin>30</ymin>", "<ymin>thirty</ymin>")],
            r"frame_1.xml:33: <ymin> is 'thirty', not a number",
        ),
        (
            [
                ("<width>64</width>", "<width>640</width>"),
                ("<height>48</height>", "<height>480</height>"),
            ],
            r"frame_1.xml: annotated for 640x480 images but frame_1.ppm is 64x48",
        ),
    ],
    ids=[
        "missing_head_box",
        "two_head_boxes",
        "xml_that_does_not_parse",
        "reversed_box",
        "box_outside_the_image",
        "box_that_is_not_a_number",
        "xml_size_differs_from_the_frames",
    ],
)
def test_a_bad_xml_file_is_an_error_naming_it(
    tmp_path: Path, edits: list[tuple[str, str]], error: str
) -> None:
    xml = XML
    for old, new in edits:
        xml = xml.replace(old, new, 1)
    with pytest.raises(DataError, match=error):
        _prepare_with_xml(tmp_path, xml)


def test_frame_listed_twice(tmp_path: Path) -> None:
    source = _source(tmp_path, frames=2)
    _write_frames(source / "P01" / "setting2", 1, suffix=".jpg")
    error = r"setting2/frame_1.ppm: frame 'frame_1' listed twice: frame_1.jpg and frame_1.ppm"
    _prepare_fails(source, tmp_path, error)


def test_keypoint_file_listed_twice(tmp_path: Path) -> None:
    source = _source(tmp_path, frames=2)
    for session, setting in FOLDERS:
        _keypoints(source / session / setting)
    folder = source / "P01" / "setting1"
    shutil.copy(folder / "frame_2_keypoints.json", folder / "frame_2.json")
    error = r"frame_2.json: frame 'frame_2' listed twice: frame_2_keypoints.json and frame_2"
    _prepare_fails(source, tmp_path, error, head_source="openpose")


def test_missing_keypoint_file(tmp_path: Path) -> None:
    source = _source(tmp_path, frames=2)
    error = r"frame_1.ppm: no OpenPose file for frame frame_1.ppm \(frame_1_keypoints.json\)"
    _prepare_fails(source, tmp_path, error, head_source="openpose")


def test_keypoint_file_that_is_not_json_or_not_body_25(tmp_path: Path) -> None:
    source = _source(tmp_path, frames=1)
    for session, setting in FOLDERS:
        _keypoints(source / session / setting)
    bad = source / "P01" / "setting1" / "frame_1_keypoints.json"
    bad.write_text('{"version": 1.3,\n "people": [\n')
    options = PrepareOptions(target="cup", head_source="openpose")
    with pytest.raises(DataError, match=r"frame_1_keypoints.json:3: not valid JSON"):
        prepare(source, tmp_path / "out", options)
    bad.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": [0.0] * 54}]}))
    with pytest.raises(
        DataError, match=r"pose_keypoints_2d has 54 values; the BODY_25 model writes 75"
    ):
        prepare(source, tmp_path / "out", options)


def test_folder_without_exactly_one_xml(tmp_path: Path) -> None:
    source = _source(tmp_path, frames=1)
    (source / "P02" / "setting1" / "frame_1.xml").unlink()
    _prepare_fails(
        source, tmp_path, r"P02/setting1: expected one labelImg XML file in this folder, found 0"
    )
    (source / "P02" / "setting1" / "a.xml").write_text(XML)
    (source / "P02" / "setting1" / "b.xml").write_text(XML)
    _prepare_fails(source, tmp_path, r"found 2 \(a.xml, b.xml\)")


def test_targets_file_errors(tmp_path: Path) -> None:
    source = _source(tmp_path, frames=1)
    targets = tmp_path / "targets.csv"
    header = "session,setting,target"
    all_cup = ["P01,setting1,cup", "P01,setting2,cup", "P02,setting1,cup"]
    cases = [
        (
            [header, *all_cup[:2], "P01,setting1,book", all_cup[2]],
            r"csv:4: folder P01/setting1 listed twice \(first on line 2\)",
        ),
        (["session,setting", "P01,setting1"], r"csv:1: expected the header session,setting,target"),
        ([header, "P01,setting1,cup,extra"], r"targets.csv:2: expected 3 fields"),
        ([header, *all_cup[:2]], r"targets.csv: no line for folder P02/setting1"),
        ([header, *all_cup, "P03,setting1,cup"], r"csv: folder P03/setting1 is not in the source"),
        (
            [header, "P01,setting1,head", *all_cup[1:]],
            r"csv: folder P01/setting1: the target cannot",
        ),
    ]
    for lines, message in cases:
        targets.write_text("\n".join(lines) + "\n")
        with pytest.raises(DataError, match=message):
            prepare(source, tmp_path / "out", PrepareOptions(targets=targets))
    assert not (tmp_path / "out").exists()


def test_read_targets_returns_none_for_out_of_frame() -> None:
    assert read_targets(FIXTURES / "targets.csv") == {
        ("P01", "setting1"): "cup",
        ("P01", "setting2"): "bottle",
        ("P02", "setting1"): None,
    }


def test_unreadable_image_and_missing_source(tmp_path: Path) -> None:
    source = _source(tmp_path, frames=2)
    (source / "P01" / "setting2" / "frame_2.ppm").write_bytes(b"P6 not really")
    _prepare_fails(source, tmp_path, r"setting2/frame_2.ppm: cannot read image")
    with pytest.raises(DataError, match=r"nowhere: source folder not found"):
        prepare(tmp_path / "nowhere", tmp_path / "out", PrepareOptions(target="cup"))
    with pytest.raises(DataError, match="must not lie inside the source"):
        prepare(source, source / "out", PrepareOptions(target="cup"))
    (source / "P03").mkdir()
    _prepare_fails(source, tmp_path, r"raw/P03: no <setting> folders in this session folder")


def test_options_need_exactly_one_target_source() -> None:
    with pytest.raises(ValidationError, match="either as `target`"):
        PrepareOptions()
    with pytest.raises(ValidationError, match="either as `target`"):
        PrepareOptions(target="cup", targets=Path("targets.csv"))
    with pytest.raises(ValidationError, match="extra"):
        PrepareOptions(target="cup", evry=2)
    with pytest.raises(ValidationError):
        PrepareOptions(target="cup", split="../train")
    with pytest.raises(ValidationError):
        PrepareOptions(target="cup", every=0)


# --- what the index reads back -----------------------------------------------------------------


def test_the_index_reads_what_prepare_writes(tmp_path: Path) -> None:
    source, output = _source(tmp_path, frames=5), tmp_path / "out"
    for session, setting in FOLDERS:
        _keypoints(source / session / setting, dx=1.0)
    options = PrepareOptions(
        targets=FIXTURES / "targets.csv", head_source="openpose", head_box="centred", every=2
    )
    report = prepare(source, output, options)
    clips = build_index(SourceSpec(root=output), smoothing_window=1)
    assert [(c.source, c.subset, c.show, c.clip, c.person) for c in clips] == [
        ("objectattention", "train", session, setting, "person") for session, setting in FOLDERS
    ]
    for clip, prepared in zip(clips, report.clips, strict=True):
        assert clip.frames == prepared.frames and clip.image_size == (64, 48)
        # Frames 1, 3, 5 kept: the keypoints moved 0, 2 and 4 pixels to the right.
        expected_boxes = [[24.65 + dx, 11.48, 36.35 + dx, 25.52] for dx in (0, 2, 4)]
        np.testing.assert_allclose(clip.boxes, expected_boxes)
    gaze = {(clip.show, clip.clip): clip.gaze[0].tolist() for clip in clips}
    assert gaze == {
        ("P01", "setting1"): [45, 35],
        ("P01", "setting2"): [9, 32],
        ("P02", "setting1"): [-1, -1],
    }
