"""The lab's ObjectAttention files read exactly as its scripts write them (tests/_lab_data.py):
a header with spaces, `, ` between fields, no header, `00012.json` frame fields, `None` rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _lab_data import LAB_HEADER, LabFrame, labelimg_frames, openpose_frames, write_lab_clip

from vtd.data import DataConfig, DataError, SourceSpec, build_index
from vtd.data.config import AnnotationFormat
from vtd.data.formats._registry import FORMAT_NAMES
from vtd.data.index import index_data


def write_session_clip(root: Path, frames: Sequence[LabFrame], **options: Any) -> Path:
    """`write_lab_clip` of one training session ("S1", setting "a"): the tests here read one
    clip, and its session's name does not matter to them."""
    return write_lab_clip(root, subset="train", session="S1", setting="a", frames=frames, **options)


def test_the_labelimg_route_header_with_spaces_and_comma_space_fields(tmp_path: Path) -> None:
    frames = labelimg_frames(4, out_of_frame=1)
    annotation = write_lab_clip(
        tmp_path, subset="train", session="session_5", setting="pringles", frames=frames
    )
    assert annotation.read_text().splitlines()[:2] == [
        LAB_HEADER,
        "00000000, 206, 24, 300, 144, 350.5, 200.0",
    ]
    index = index_data(SourceSpec(root=tmp_path), smoothing_window=1)
    [clip] = index.clips
    assert clip.source == "objectattention"
    assert index.formats[annotation].label == "objectattention"
    assert [path.name for path in clip.frames] == [f"{i:08d}.ppm" for i in range(4)]
    assert clip.lines == (2, 3, 4, 5), "the header is line 1"
    assert clip.image_size == (640, 480)
    np.testing.assert_array_equal(clip.boxes, [[206, 24, 300, 144]] * 4)
    np.testing.assert_array_equal(clip.gaze, [[350.5, 200.0]] * 3 + [[-1, -1]])
    assert clip.inout.tolist() == [True, True, True, False]


def test_a_header_with_commas_and_fields_without_spaces(tmp_path: Path) -> None:
    annotation = write_session_clip(tmp_path, labelimg_frames(3))
    lines = annotation.read_text().splitlines()
    comma_lines = [lines[0].replace(" ", ","), *(line.replace(", ", ",") for line in lines[1:])]
    annotation.write_text("\n".join(comma_lines) + "\n")
    [clip] = build_index(SourceSpec(root=tmp_path))
    assert clip.source == "objectattention" and len(clip) == 3 and clip.lines == (2, 3, 4)


@pytest.mark.parametrize("format", ["auto", "objectattention"])
def test_a_headerless_file_keeps_its_first_line_as_data(tmp_path: Path, format: str) -> None:
    # The lab's pandas reader (header=0) dropped this first frame; we read the file as written.
    annotation = write_session_clip(tmp_path, labelimg_frames(3), header=False)
    index = index_data(SourceSpec(root=tmp_path, format=format))
    [clip] = index.clips
    assert clip.lines == (1, 2, 3)
    assert [path.stem for path in clip.frames] == ["00000000", "00000001", "00000002"]
    assert index.formats[annotation].label == "objectattention (no header)"


def test_the_openpose_route_json_frame_fields_and_five_digit_names(tmp_path: Path) -> None:
    annotation = write_session_clip(tmp_path, openpose_frames(3), name="S01", header=False)
    assert annotation.read_text().splitlines()[0] == "00000.json, 250, 60, 330, 166, 480.0, 330.5"
    [clip] = build_index(SourceSpec(root=tmp_path, format="objectattention"), smoothing_window=1)
    assert [path.name for path in clip.frames] == ["00000.ppm", "00001.ppm", "00002.ppm"]
    np.testing.assert_array_equal(clip.boxes[2], [252, 60, 332, 166])


def test_a_none_row_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    annotation = write_session_clip(tmp_path, openpose_frames(4, no_head=[2]), header=False)
    assert annotation.read_text().splitlines()[2] == (
        "00002.json, None, None, None, None, 480.0, 330.5"
    )
    with pytest.raises(DataError) as caught:
        build_index(SourceSpec(root=tmp_path))
    assert (caught.value.path, caught.value.line) == (annotation, 3)
    assert str(caught.value).startswith(f"{annotation}:3: ")
    assert "no head detected" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_none_rows_are_skipped_and_counted_with_on_bad_frame_skip(tmp_path: Path) -> None:
    annotation = write_session_clip(tmp_path, openpose_frames(5, no_head=[0, 3]), header=False)
    config = DataConfig(sources=[str(tmp_path)], on_bad_frame="skip")
    index = index_data(config, ".")
    [clip] = index.clips
    assert [path.stem for path in clip.frames] == ["00001", "00002", "00004"]
    assert clip.lines == (2, 3, 5)
    assert [(frame.annotation_file, frame.line, frame.kind) for frame in index.skipped] == [
        (annotation, 1, "no head detected"),
        (annotation, 4, "no head detected"),
    ]
    # The first line was a None row: detection still knows the headerless lab file.
    assert index.formats[annotation].label == "objectattention (no header)"


def test_an_explicit_format_never_guesses(tmp_path: Path) -> None:
    annotation = write_session_clip(tmp_path, labelimg_frames(2))
    with pytest.raises(DataError) as caught:
        build_index(SourceSpec(root=tmp_path, format="videoattentiontarget"))
    assert (caught.value.path, caught.value.line) == (annotation, 1)
    assert "objectattention header" in caught.value.reason
    # A headerless VideoAttentionTarget-style line read as ObjectAttention is data, not a guess.
    annotation.write_text("00000000.ppm,206,24,300,144,350.5,200.0\n")
    [clip] = build_index(SourceSpec(root=tmp_path, format="objectattention"))
    assert clip.source == "objectattention" and clip.lines == (1,)
    [auto] = build_index(SourceSpec(root=tmp_path))
    assert auto.source == "videoattentiontarget", "auto: a frame with extension is VAT's"


def test_the_format_key_lists_exactly_the_readers() -> None:
    assert set(AnnotationFormat.__args__) == {"auto", *FORMAT_NAMES}
    with pytest.raises(ValueError, match="format"):
        SourceSpec(root=Path("x"), format="csv")
