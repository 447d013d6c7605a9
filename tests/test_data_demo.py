"""The demo data sets: layout of both formats, determinism, visible gaze cues, caching."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

import vtd.demo
from vtd.data import SourceSpec, build_index
from vtd.demo._scene import (
    EYE_COLOUR,
    HAIR_COLOUR,
    NOSE_COLOUR,
    OBJECT_COLOURS,
    SKIN_COLOUR,
)
from vtd.demo.generate import GENERATOR_VERSION, MANIFEST_NAME

SMALL = vtd.demo.DemoConfig(
    seed=3,
    min_frames=10,
    max_frames=14,
    objectattention=vtd.demo.DemoLayout(
        train_shows=2, test_shows=1, clips_per_show=2, width=96, height=72
    ),
    videoattentiontarget=vtd.demo.DemoLayout(
        train_shows=1, test_shows=1, clips_per_show=2, width=112, height=64
    ),
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> vtd.demo.DemoDatasets:
    return vtd.demo.generate_demo(tmp_path_factory.mktemp("demo") / "data", vtd.demo.DemoConfig())


def _files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _read_oa(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "frame,x_min,y_min,x_max,y_max,gaze_x,gaze_y"
    rows = [line.split(",") for line in lines[1:]]
    return [row[0] for row in rows], np.array([[float(v) for v in row[1:]] for row in rows])


def _read_vat(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]
    return [row[0] for row in rows], np.array([[float(v) for v in row[1:]] for row in rows])


def _clips(
    demo: vtd.demo.DemoDatasets,
) -> list[tuple[Path, list[Path], np.ndarray, tuple[int, int]]]:
    """(annotation file, image files in row order, values (T, 6), frame size) of every clip."""
    clips = []
    config = vtd.demo.DemoConfig()
    for dataset, layout, reader in (
        (demo.objectattention, config.objectattention, _read_oa),
        (demo.videoattentiontarget, config.videoattentiontarget, _read_vat),
    ):
        for annotation in sorted((dataset.root / "annotations").rglob("*.txt")):
            split, show, clip = annotation.relative_to(dataset.root / "annotations").parts[:3]
            names, values = reader(annotation)
            folder = dataset.root / "images" / show / clip
            suffix = ".ppm" if dataset.format == "objectattention" else ""
            clips.append(
                (
                    annotation,
                    [folder / f"{n}{suffix}" for n in names],
                    values,
                    (layout.width, layout.height),
                )
            )
    return clips


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    vtd.demo.generate_demo(tmp_path / "a", SMALL)
    vtd.demo.generate_demo(tmp_path / "b", SMALL)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(first) > 50
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_other_frames(tmp_path: Path) -> None:
    vtd.demo.generate_demo(tmp_path / "a", SMALL)
    vtd.demo.generate_demo(tmp_path / "b", SMALL.model_copy(update={"seed": 4}))
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    common = [name for name in first if name.endswith(".ppm") and name in second]
    assert common and all(first[name] != second[name] for name in common)


def test_objectattention_layout(demo: vtd.demo.DemoDatasets) -> None:
    dataset = demo.objectattention
    assert dataset.train == ("P01", "P02", "P03", "P04") and dataset.test == ("P05", "P06")
    for split, sessions in (("train", dataset.train), ("test", dataset.test)):
        found = sorted(p.name for p in (dataset.root / "annotations" / split).iterdir())
        assert found == list(sessions)
        for session in sessions:
            for setting in ("setting1", "setting2", "setting3"):
                annotation = dataset.root / "annotations" / split / session / setting / "person.txt"
                names, values = _read_oa(annotation)
                images = sorted((dataset.root / "images" / session / setting).iterdir())
                assert [image.name for image in images] == [f"{name}.ppm" for name in names]
                assert names == [f"{index:06d}" for index in range(1, len(names) + 1)]
                assert 12 <= len(names) <= 24 and values.shape == (len(names), 6)
                with Image.open(images[0]) as image:
                    assert (image.format, image.size, image.mode) == ("PPM", (160, 120), "RGB")


def test_videoattentiontarget_layout(demo: vtd.demo.DemoDatasets) -> None:
    dataset = demo.videoattentiontarget
    assert dataset.train == tuple(f"Demo Show {i:02d}" for i in range(1, 5))
    assert dataset.test == ("Demo Show 05", "Demo Show 06")
    for split, shows in (("train", dataset.train), ("test", dataset.test)):
        assert sorted(p.name for p in (dataset.root / "annotations" / split).iterdir()) == list(
            shows
        )
        for show in shows:
            clips = sorted((dataset.root / "annotations" / split / show).iterdir())
            assert len(clips) == 2
            for clip in clips:
                first, last = map(int, clip.name.split("_"))
                names, _ = _read_vat(clip / "s00.txt")
                assert names == [f"{frame:08d}.jpg" for frame in range(first, last + 1)]
                images = sorted(
                    p.name for p in (dataset.root / "images" / show / clip.name).iterdir()
                )
                assert images == names
                with Image.open(dataset.root / "images" / show / clip.name / names[0]) as image:
                    assert (image.format, image.size) == ("JPEG", (192, 108))


def test_boxes_hold_the_head_and_gaze_points_land_on_objects(demo: vtd.demo.DemoDatasets) -> None:
    object_colours = np.array(OBJECT_COLOURS)
    n_frames = n_out = 0
    for annotation, images, values, (width, height) in _clips(demo):
        boxes, gaze = values[:, :4], values[:, 4:]
        assert np.all(boxes[:, 0] < boxes[:, 2]) and np.all(boxes[:, 1] < boxes[:, 3])
        assert np.all(boxes >= 0) and np.all(boxes[:, 2] <= width) and np.all(boxes[:, 3] <= height)
        out = np.all(gaze == -1, axis=1)
        n_frames, n_out = n_frames + len(gaze), n_out + int(out.sum())
        for image_path, box, point, is_out in zip(images, boxes, gaze, out, strict=True):
            pixels = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.int64)
            x0, y0, x1, y1 = box.astype(int)
            crop = pixels[y0:y1, x0:x1]
            head = (np.abs(crop - SKIN_COLOUR).max(axis=2) < 30) | (
                np.abs(crop - HAIR_COLOUR).max(axis=2) < 30
            )
            assert head.mean() > 0.45, f"{annotation}: box {box} misses the head"
            if not is_out:
                colour = pixels[int(point[1]), int(point[0])]
                # The gaze point is an object's centre: one of the saturated object colours.
                distance = np.abs(object_colours - colour).max(axis=1).min()
                assert distance < 30, f"{annotation}: gaze {point} on colour {colour}"
    assert 0.05 < n_out / n_frames < 0.4


def test_gaze_moves_between_objects_within_clips(demo: vtd.demo.DemoDatasets) -> None:
    moving = 0
    clips = _clips(demo)
    for _, _, values, _ in clips:
        targets = {tuple(point) for point in values[:, 4:] if point[0] >= 0}
        changes = int(np.any(np.diff(values[:, 4:], axis=0) != 0, axis=1).sum())
        assert changes >= 1
        moving += len(targets) >= 2
    assert moving >= len(clips) // 2


def _face_offset(pixels: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Centroid of the face (skin, eyes, nose: the head but its hair) minus the box centre."""
    x0, y0, x1, y1 = box.astype(int)
    crop = pixels[y0:y1, x0:x1]
    face = np.zeros(crop.shape[:2], dtype=bool)
    for colour in (SKIN_COLOUR, EYE_COLOUR, NOSE_COLOUR):
        face |= np.abs(crop - colour).max(axis=2) < 25
    ys, xs = np.nonzero(face)
    return np.array([xs.mean() - (x1 - x0 - 1) / 2, ys.mean() - (y1 - y0 - 1) / 2])


def test_face_turns_towards_the_gaze_target(demo: vtd.demo.DemoDatasets) -> None:
    agree = in_frame = 0
    face_heights: dict[bool, list[float]] = {True: [], False: []}
    for _, images, values, _ in _clips(demo)[::2]:
        for frame, (image_path, row) in enumerate(zip(images, values, strict=True)):
            pixels = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.int64)
            offset = _face_offset(pixels, row[:4])
            # The head turns over two frames and starts one frame before the label changes.
            steady = frame >= 2 and bool(np.all(values[frame - 2 : frame + 2, 4:] == row[4:]))
            if steady:
                face_heights[bool(row[4] < 0)].append(offset[1])
            if row[4] < 0:
                continue
            to_target = row[4:] - (row[:2] + row[2:4]) / 2
            cosine = offset @ to_target / (np.linalg.norm(offset) * np.linalg.norm(to_target))
            in_frame += 1
            agree += cosine > 0.8
    assert agree / in_frame > 0.9
    # Objects lie below the head; an out-of-frame look turns the face up or sideways.
    looking_out, looking_in = face_heights[True], face_heights[False]
    assert looking_out and looking_in
    assert max(looking_out) < min(looking_in)


def test_generate_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        vtd.demo.generate_demo(tmp_path, SMALL)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="max_frames"):
        vtd.demo.DemoConfig(min_frames=20, max_frames=10)
    with pytest.raises(ValidationError, match="extra"):
        vtd.demo.DemoConfig(sed=1)
    with pytest.raises(ValidationError):
        vtd.demo.DemoConfig(objects=1)


def test_ensure_demo_generates_once_and_reuses(tmp_path: Path) -> None:
    first = vtd.demo.ensure_demo(tmp_path, SMALL)
    assert first.root == tmp_path / vtd.demo.demo_folder_name(SMALL)
    assert first.root.name.startswith(f"demo-v{GENERATOR_VERSION}-")
    manifest = first.root / MANIFEST_NAME
    assert json.loads(manifest.read_text())["config"]["seed"] == 3
    stamp = manifest.stat().st_mtime_ns, manifest.stat().st_ino
    again = vtd.demo.ensure_demo(tmp_path, SMALL)
    assert again == first
    assert (manifest.stat().st_mtime_ns, manifest.stat().st_ino) == stamp
    other = vtd.demo.ensure_demo(tmp_path, SMALL.model_copy(update={"seed": 4}))
    assert other.root != first.root
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.root.name, other.root.name])


def test_ensure_demo_rejects_a_folder_that_does_not_match(tmp_path: Path) -> None:
    folder = tmp_path / vtd.demo.demo_folder_name(SMALL)
    folder.mkdir()
    with pytest.raises(vtd.demo.DemoCacheError, match="delete the folder"):
        vtd.demo.ensure_demo(tmp_path, SMALL)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_ensure_demo_is_safe_when_processes_race(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        results = pool.starmap(vtd.demo.ensure_demo, [(tmp_path, SMALL)] * 3)
    assert {result.root for result in results} == {tmp_path / vtd.demo.demo_folder_name(SMALL)}
    # One complete copy, no staging folders left behind.
    assert [path.name for path in tmp_path.iterdir()] == [vtd.demo.demo_folder_name(SMALL)]
    reference = tmp_path.parent / "reference"
    vtd.demo.generate_demo(reference, SMALL)
    assert _files(results[0].root) == _files(reference)


def test_the_index_reads_both_demo_data_sets_as_written(demo: vtd.demo.DemoDatasets) -> None:
    specs = [
        SourceSpec(root=demo.objectattention.root),
        SourceSpec(root=demo.videoattentiontarget.root),
    ]
    clips = build_index(specs, smoothing_window=1)
    written = {annotation: (images, values) for annotation, images, values, _ in _clips(demo)}
    assert len(clips) == len(written) == 6 * 3 + 6 * 2
    by_format = {
        fmt: {clip.show for clip in clips if clip.source == fmt}
        for fmt in ("objectattention", "videoattentiontarget")
    }
    for dataset in (demo.objectattention, demo.videoattentiontarget):
        assert by_format[dataset.format] == {*dataset.train, *dataset.test}
        for split, shows in (("train", dataset.train), ("test", dataset.test)):
            assert {
                c.show for c in clips if c.source == dataset.format and c.subset == split
            } == set(shows)
    for clip in clips:
        images, values = written[clip.annotation_file]
        assert list(clip.frames) == images
        np.testing.assert_array_equal(clip.boxes, values[:, :4])
        np.testing.assert_array_equal(clip.gaze, values[:, 4:])
