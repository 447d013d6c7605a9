"""Both annotation formats, format detection, image lookup by name, mixed sources, smoothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_factory import frame_specs, write_image, write_train_clip

from vtd.data import DataConfig, DataError, SourceSpec, build_index, chunk_loader, load_splits
from vtd.data.images import ImageFolder, image_extensions
from vtd.data.targets import smooth_track

FIXTURES = Path(__file__).parent / "data" / "vtd_data"


def raw_values(annotation: Path, header: bool) -> np.ndarray:
    lines = annotation.read_text().splitlines()[1 if header else 0 :]
    return np.array([[float(v) for v in line.split(",")[1:]] for line in lines])


def test_videoattentiontarget_files_are_read_with_their_images():
    clips = build_index(SourceSpec(root=FIXTURES / "videoattentiontarget"))
    assert [clip.key for clip in clips] == [
        "videoattentiontarget/test/Show B/0020_0023/s00",
        "videoattentiontarget/train/Show A/0001_0006/s00",
        "videoattentiontarget/train/Show A/0001_0006/s01",
    ]
    clip = clips[1]
    assert clip.source == "videoattentiontarget"
    assert (clip.show, clip.clip, clip.person, clip.subset) == (
        "Show A",
        "0001_0006",
        "s00",
        "train",
    )
    assert [path.name for path in clip.frames] == [f"{i:08d}.jpg" for i in range(1, 7)]
    assert all(path.is_file() for path in clip.frames)
    assert clip.image_size == (64, 48)
    assert clip.lines == tuple(range(1, 7))
    raw = raw_values(clip.annotation_file, header=False)
    np.testing.assert_array_equal(clip.gaze, raw[:, 4:])
    assert clip.inout.tolist() == [True, True, True, False, True, True]


def test_objectattention_files_with_header_and_names_without_extension():
    clips = build_index(SourceSpec(root=FIXTURES / "objectattention"))
    assert [clip.source for clip in clips] == ["objectattention"] * 2
    train = next(clip for clip in clips if clip.subset == "train")
    assert (train.show, train.clip, train.person) == ("P01", "setting1", "person")
    assert [path.suffix for path in train.frames] == [".ppm"] * 5
    assert train.lines == tuple(range(2, 7)), "line numbers count the header"
    raw = raw_values(train.annotation_file, header=True)
    np.testing.assert_array_equal(train.gaze, raw[:, 4:])


def test_head_boxes_are_smoothed_as_published():
    clips = build_index(SourceSpec(root=FIXTURES / "videoattentiontarget"))
    clip = clips[1]
    raw = raw_values(clip.annotation_file, header=False)[:, :4]
    np.testing.assert_allclose(clip.boxes, smooth_track(raw, 11))
    assert not np.allclose(clip.boxes, raw), "the fixture's boxes move, so smoothing shows"
    unsmoothed = build_index(SourceSpec(root=FIXTURES / "videoattentiontarget"), smoothing_window=1)
    np.testing.assert_allclose(unsmoothed[1].boxes, raw)


def test_format_is_detected_per_file_within_one_source(tmp_path):
    # One source holding both formats: a header file and a headerless one side by side.
    write_train_clip(tmp_path, "objectattention", frame_specs(3), clip="a")
    write_train_clip(tmp_path, "videoattentiontarget", frame_specs(3), clip="b")
    clips = build_index(SourceSpec(root=tmp_path))
    assert [clip.source for clip in clips] == ["objectattention", "videoattentiontarget"]
    assert [clip.frames[0].suffix for clip in clips] == [".ppm", ".jpg"]


def test_mixed_ppm_and_jpg_sources_in_one_split_from_a_one_line_config():
    config = DataConfig(sources=["objectattention", "videoattentiontarget"])
    splits = load_splits(config, FIXTURES)
    assert {clip.source for clip in splits.train} == {"objectattention", "videoattentiontarget"}
    assert {clip.frames[0].suffix for clip in splits.train} == {".ppm", ".jpg"}
    assert {clip.show for clip in splits.test} == {"Show B", "P02"}
    assert {clip.dataset for clip in splits.train} == {"objectattention", "videoattentiontarget"}
    # ... and one batch of the loader decodes both kinds of frames.
    loader = chunk_loader(splits.train, batch_size=len(splits.train), chunk_size=9, train=False)
    chunk = next(iter(loader))
    assert len(chunk) == sum(len(clip) for clip in splits.train)
    assert torch.isfinite(chunk.images).all() and chunk.images.std() > 0


def test_images_are_found_whatever_their_extension(tmp_path):
    # The annotation says .jpg (VideoAttentionTarget) but the frames were converted to .png.
    frames = frame_specs(3)
    write_train_clip(tmp_path, "videoattentiontarget", frames, extension=".jpg", write_images=False)
    for i, spec in enumerate(frames):
        write_image(tmp_path / "images" / "S" / "c" / f"{spec.name}.png", (64, 48), i)
    (tmp_path / "images" / "S" / "c" / "notes.txt").write_text("not an image")
    clip = build_index(SourceSpec(root=tmp_path))[0]
    assert [path.suffix for path in clip.frames] == [".png"] * 3


def test_image_folder_lookup_rules(tmp_path):
    for name in ("0001.ppm", "0002.JPG", "0003.png", "0003.jpg", "0004.txt"):
        (tmp_path / name).write_bytes(b"")
    folder = ImageFolder(tmp_path)
    assert folder.find("0001") == tmp_path / "0001.ppm"
    assert folder.find("0001.jpg") == tmp_path / "0001.ppm"
    assert folder.find("0002.jpg") == tmp_path / "0002.JPG"
    assert folder.find("0003.png") == tmp_path / "0003.png", "an exact name wins"
    with pytest.raises(LookupError, match="several images"):
        folder.find("0003")
    assert folder.find("0004") is None, ".txt is not an image"
    assert folder.find("0005") is None
    assert {".ppm", ".jpg", ".png", ".jpeg"} <= image_extensions()


def test_subsets_restrict_what_is_indexed():
    spec = SourceSpec(root=FIXTURES / "videoattentiontarget", subsets=("train",))
    assert {clip.subset for clip in build_index(spec)} == {"train"}


def test_relative_roots_start_at_the_base_directory(tmp_path):
    shutil.copytree(FIXTURES / "objectattention", tmp_path / "data" / "oa")
    config = DataConfig(sources=["data/oa"])
    clips = build_index(config, tmp_path)
    assert clips[0].dataset == "oa"
    assert clips[0].frames[0].is_relative_to(tmp_path)
    with pytest.raises(DataError, match="data set folder not found"):
        build_index(config, tmp_path / "elsewhere")


def test_gaze_slightly_outside_is_moved_onto_the_border(tmp_path):
    frames = frame_specs(2, out_every=0)
    frames[0] = type(frames[0])(frames[0].name, frames[0].box, (-3.0, 50.0))
    write_train_clip(tmp_path, "videoattentiontarget", frames)
    clip = build_index(SourceSpec(root=tmp_path))[0]
    np.testing.assert_array_equal(clip.gaze[0], [0.0, 48.0])
    assert clip.inout.tolist() == [True, True]
