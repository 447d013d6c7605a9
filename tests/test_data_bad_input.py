"""Every kind of bad input is one `DataError` naming the file and line, or, where the
documented `on_bad_frame: skip` says so, a skipped frame counted in one warning."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from _data_factory import OA_HEADER, frame_specs, write_image, write_train_clip

from vtd.data import DataConfig, DataError, SourceSpec, build_index, chunk_loader, load_splits

GOOD_VAT = "{name:08d}.jpg,4,6,16,20,50,40"


@pytest.fixture
def vat_clip(tmp_path: Path) -> Path:
    """A 5-frame VideoAttentionTarget clip; returns its annotation file for the test to edit."""
    return write_train_clip(tmp_path, "videoattentiontarget", frame_specs(5), person="s00")


def set_line(annotation: Path, number: int, text: str) -> None:
    lines = annotation.read_text().splitlines()
    lines[number - 1] = text
    annotation.write_text("\n".join(lines) + "\n")


def index_error(root: Path, **options) -> DataError:
    with pytest.raises(DataError) as caught:
        build_index(SourceSpec(root=root), **options)
    return caught.value


def assert_names(error: DataError, annotation: Path, line: int | None) -> None:
    assert error.path == annotation
    assert error.line == line
    prefix = f"{annotation}:{line}: " if line is not None else f"{annotation}: "
    assert str(error).startswith(prefix)
    chained = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    assert chained is None, "no chained traceback from a library"


def clip_error(annotation: Path, line: int | None, **options) -> DataError:
    """The error of indexing the data set of `annotation`, checked to name that file and `line`."""
    error = index_error(annotation.parents[4], **options)
    assert_names(error, annotation, line)
    return error


def error_for_line(annotation: Path, number: int, text: str) -> DataError:
    """`clip_error` once line `number` of `annotation` reads `text`."""
    set_line(annotation, number, text)
    return clip_error(annotation, number)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("00000003.jpg,4,6,16,20,50", r"expected 7 comma-separated columns .* found 6"),
        ("00000003.jpg,4,6,16,20,50,40,1", r"expected 7 .* found 8"),
        ("00000003.jpg,4,six,16,20,50,40", r"column ymin: 'six' is not a number"),
        ("00000003.jpg,4,6,16,20,nan,40", r"column gazex: 'nan' is not a finite number"),
        ("00000003.jpg,4,6,16,20,50,inf", r"column gazey: 'inf' is not a finite number"),
        ("00000003.jpg,4,6,16,,50,40", r"column ymax: '' is not a number"),
        (",4,6,16,20,50,40", r"empty frame name"),
    ],
)
def test_malformed_line(vat_clip, text, reason):
    error = error_for_line(vat_clip, 3, text)
    assert re.search(reason, error.reason)


def test_malformed_objectattention_line_counts_the_header(tmp_path):
    annotation = write_train_clip(tmp_path, "objectattention", frame_specs(3), show="P")
    set_line(annotation, 3, "00000002,4,6,16,20,50")
    error = index_error(tmp_path)
    assert_names(error, annotation, 3)
    assert "frame,x_min,y_min,x_max,y_max,gaze_x,gaze_y" in error.reason


BOXES_OUTSIDE = ["70,6,90,20", "4,60,16,80", "-40,6,-2,20", "4,6,640,20"]
FRAME_NAMES = ["00000002.jpg", "00000002"]  # frame 2 again on line 4, with or without extension


@pytest.mark.parametrize(
    ("number", "text", "reason"),
    [
        (2, "00000002.jpg,16,6,4,20,50,40", "xmax <= xmin"),
        *[(4, f"00000004.jpg,{box},50,40", "outside the 64x48 image") for box in BOXES_OUTSIDE],
        (5, "00000005.jpg,4,6,16,20,300,40", "gaze point"),
        *[(4, f"{name},4,6,16,20,50,40", "listed twice (first on line 2)") for name in FRAME_NAMES],
        (1, "path,xmin,ymin,xmax,ymax,gazex,gazey", "unrecognised annotation format"),
    ],
    ids=[
        "inverted_box",
        *(f"box_outside_the_image-{box}" for box in BOXES_OUTSIDE),
        "gaze_far_outside_the_image",
        *(f"frame_listed_twice-{name}" for name in FRAME_NAMES),
        "unknown_header",
    ],
)
def test_a_bad_line_is_an_error_naming_it(vat_clip, number, text, reason):
    error = error_for_line(vat_clip, number, text)
    assert reason in error.reason


def test_missing_image(vat_clip):
    (vat_clip.parents[4] / "images" / "S" / "c" / "00000002.jpg").unlink()
    error = clip_error(vat_clip, 2)
    assert "image for frame '00000002.jpg' not found" in error.reason


def test_ambiguous_image(vat_clip):
    write_image(vat_clip.parents[4] / "images" / "S" / "c" / "00000002.png", (64, 48), 0)
    (vat_clip.parents[4] / "images" / "S" / "c" / "00000002.jpg").unlink()
    write_image(vat_clip.parents[4] / "images" / "S" / "c" / "00000002.ppm", (64, 48), 0)
    error = clip_error(vat_clip, 2)
    assert "several images" in error.reason


def test_a_malformed_first_line_is_a_malformed_line_not_an_unknown_format(vat_clip):
    error = error_for_line(vat_clip, 1, "00000001.jpg,four,6,16,20,50,40")
    assert "column xmin: 'four' is not a number" in error.reason
    clips = build_index(SourceSpec(root=vat_clip.parents[4]), on_bad_frame="skip")
    assert clips[0].lines == (2, 3, 4, 5)


@pytest.mark.parametrize(
    "content", ["", "\n\n  \n", OA_HEADER + "\n"], ids=["empty", "blank", "header"]
)
def test_empty_annotation_file(vat_clip, content):
    vat_clip.write_text(content)
    error = clip_error(vat_clip, None)
    assert "empty annotation file" in error.reason


def test_unreadable_image(vat_clip):
    (vat_clip.parents[4] / "images" / "S" / "c" / "00000001.jpg").write_bytes(b"not a jpeg")
    error = clip_error(vat_clip, 1)
    assert "cannot read image" in error.reason and "00000001.jpg" in error.reason


def test_bad_folders_name_the_folder(tmp_path):
    error = index_error(tmp_path / "absent")
    assert "data set folder not found" in str(error)
    (tmp_path / "annotations" / "train").mkdir(parents=True)
    error = index_error(tmp_path)
    assert error.path == tmp_path / "annotations"
    assert "no annotation files found" in error.reason
    with pytest.raises(DataError, match="subset folder 'test' not found"):
        build_index(SourceSpec(root=tmp_path, subsets=("test",)))


def test_skip_option_drops_bad_frames_with_one_counted_warning(vat_clip, caplog):
    root = vat_clip.parents[4]
    set_line(vat_clip, 2, "00000002.jpg,4,6,16,20,nan,40")
    set_line(vat_clip, 3, "00000001.jpg,4,6,16,20,50,40")
    (root / "images" / "S" / "c" / "00000004.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="vtd.data"):
        clips = build_index(SourceSpec(root=root), on_bad_frame="skip")
    assert [path.name for path in clips[0].frames] == ["00000001.jpg", "00000005.jpg"]
    assert clips[0].lines == (1, 5)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "skipped 3 bad frames" in message
    assert "1 malformed lines" in message and "1 missing images" in message
    assert "1 repeated frames" in message and f"{vat_clip}:2" in message


def test_skip_option_from_the_config(vat_clip):
    set_line(vat_clip, 2, "00000002.jpg,4,6,16,20,nan,40")
    root = vat_clip.parents[4]
    config = DataConfig(sources=[str(root)], on_bad_frame="skip", test=None)
    assert len(load_splits(config).train[0]) == 4


def test_skip_never_drops_a_whole_clip_silently(vat_clip):
    vat_clip.write_text("".join(f"{GOOD_VAT.format(name=i)[:-3]}\n" for i in range(1, 6)))
    error = clip_error(vat_clip, None, on_bad_frame="skip")
    assert "no usable frame left" in error.reason


def test_image_of_another_size_fails_when_decoded_naming_its_line(vat_clip):
    root = vat_clip.parents[4]
    write_image(root / "images" / "S" / "c" / "00000003.jpg", (80, 48), 0)
    clips = build_index(SourceSpec(root=root))
    for workers in (0, 2):
        loader = chunk_loader(clips, batch_size=1, chunk_size=2, train=False, num_workers=workers)
        with pytest.raises(DataError) as caught:
            list(loader)
        assert_names(caught.value, vat_clip, 3)
        assert "is 80x48, but its clip's first frame is 64x48" in caught.value.reason


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="extra"):
        DataConfig(sources=["a"], bogus=1)
    with pytest.raises(ValueError, match="must be odd"):
        DataConfig(sources=["a"], smoothing_window=10)
    with pytest.raises(ValueError, match="source names must be unique"):
        DataConfig(sources=["x/a", "y/a"])
    with pytest.raises(ValueError, match="fold 5 out of range"):
        DataConfig(sources=["a"], cross_validation={"folds": 5, "fold": 5})
    with pytest.raises(ValueError, match="cross_validation chooses the train and test"):
        DataConfig(sources=["a"], cross_validation={"folds": 5, "fold": 0}, test=None)
