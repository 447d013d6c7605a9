"""The chunk loader: packing, coverage, windows, augmentation, determinism, workers."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from _data_factory import FrameSpec, frame_specs, write_clip, write_image
from PIL import Image

from vtd.data import AugmentationConfig, SourceSpec, build_index, chunk_loader
from vtd.data.images import open_rgb
from vtd.data.loader import plan_chunks
from vtd.data.targets import gaze_heatmap, head_channel
from vtd.data.transforms import IMAGENET_MEAN, IMAGENET_STD

LENGTHS = (7, 5, 3, 6, 2)
ONLY = dict(jitter_probability=0.0, crop_probability=0.0, flip_probability=0.0,
            colour_probability=0.0)  # fmt: skip


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Five clips of lengths LENGTHS, in index order (show names sort like the list)."""
    root = tmp_path_factory.mktemp("vat")
    for i, length in enumerate(LENGTHS):
        write_clip(root, layout="videoattentiontarget", subset="train", show=f"S{i}", clip="c",
                   person="s00", frames=frame_specs(length), seed=i)  # fmt: skip
    loaded = build_index(SourceSpec(root=root))
    assert [len(clip) for clip in loaded] == list(LENGTHS)
    return loaded


@pytest.fixture(scope="module")
def static_clips(tmp_path_factory):
    """Two clips whose 6 frames are the same image, box and gaze: any per-frame difference in
    the loader's output would be per-frame augmentation."""
    root = tmp_path_factory.mktemp("static")
    for i in range(2):
        frames = [FrameSpec(f"{j:08d}", (20.0, 8.0, 34.0, 24.0), (50.0, 30.0)) for j in range(6)]
        write_clip(root, layout="objectattention", subset="train", show=f"P{i}", clip="c",
                   person="p", frames=frames, write_images=False)  # fmt: skip
        first = root / "images" / f"P{i}" / "c" / "00000000.ppm"
        write_image(first, (64, 48), i, frames[0].box)
        for j in range(1, 6):
            shutil.copy(first, first.with_name(f"{j:08d}.ppm"))
    return build_index(SourceSpec(root=root), smoothing_window=1)


def collect(loader):
    return list(loader)


def test_evaluation_packing_semantics(clips):
    chunks = collect(chunk_loader(clips, batch_size=3, chunk_size=2, train=False))
    # Batch 0: clips 0, 1, 2 (lengths 7, 5, 3); batch 1: clips 3, 4 (lengths 6, 2).
    expected = [
        # (batch, chunk, first, last, batch_sizes)
        (0, 0, True, False, [3, 3]),
        (0, 1, False, False, [3, 2]),
        (0, 2, False, False, [2, 1]),
        (0, 3, False, True, [1]),
        (1, 0, True, False, [2, 2]),
        (1, 1, False, False, [1, 1]),
        (1, 2, False, True, [1, 1]),
    ]
    got = [(c.batch_index, c.chunk_index, c.first, c.last, c.batch_sizes.tolist()) for c in chunks]
    assert got == expected
    for chunk in chunks:
        assert chunk.batch_sizes.dtype == torch.int64
        assert int(chunk.batch_sizes.sum()) == len(chunk) == chunk.images.shape[0]
    # Time-major packing: all alive clips' step t, then t + 1, longest clip first.
    assert chunks[1].clip_index.tolist() == [0, 1, 2, 0, 1]
    assert chunks[1].frame_index.tolist() == [2, 2, 2, 3, 3]


def test_batches_are_sorted_longest_first(clips):
    order = [4, 0, 3]  # lengths 2, 7, 6
    picked = [clips[i] for i in order]
    first = collect(chunk_loader(picked, batch_size=3, chunk_size=3, train=False))[0]
    assert first.clip_index.tolist() == [1, 2, 0, 1, 2, 0, 1, 2], "indices into the list given"
    assert first.batch_sizes.tolist() == [3, 3, 2]


def test_evaluation_covers_every_frame_exactly_once_in_order(clips):
    seen = Counter()
    per_clip: dict[int, list[int]] = {}
    for chunk in chunk_loader(clips, batch_size=2, chunk_size=3, train=False, max_frames=2):
        for clip, frame in zip(chunk.clip_index.tolist(), chunk.frame_index.tolist(), strict=True):
            seen[(clip, frame)] += 1
            per_clip.setdefault(clip, []).append(frame)
    everything = {(c, f) for c, clip in enumerate(clips) for f in range(len(clip))}
    assert set(seen) == everything and set(seen.values()) == {1}
    assert all(frames == sorted(frames) for frames in per_clip.values())


def normalised(image: Image.Image) -> torch.Tensor:
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    return (pixels - mean) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def test_evaluation_tensors_follow_the_published_formulas(clips):
    chunk = collect(chunk_loader(clips[:2], batch_size=2, chunk_size=4, train=False))[0]
    assert chunk.images.shape == (8, 3, 224, 224) and chunk.faces.shape == (8, 3, 224, 224)
    assert chunk.head_channels.shape == (8, 1, 224, 224) and chunk.heatmaps.shape == (8, 64, 64)
    for row in range(len(chunk)):
        clip = clips[int(chunk.clip_index[row])]
        frame = int(chunk.frame_index[row])
        width, height = clip.image_size
        image = Image.open(clip.frames[frame]).convert("RGB")
        expected_image = normalised(image.resize((224, 224), Image.Resampling.BILINEAR))
        torch.testing.assert_close(chunk.images[row], expected_image, atol=1e-5, rtol=0)
        x0, y0, x1, y1 = clip.boxes[frame]
        face = image.crop((int(x0), int(y0), int(x1), int(y1))).resize(
            (224, 224), Image.Resampling.BILINEAR
        )
        torch.testing.assert_close(chunk.faces[row], normalised(face), atol=1e-5, rtol=0)
        channel = head_channel(clip.boxes[frame : frame + 1], [clip.image_size])[0]
        torch.testing.assert_close(chunk.head_channels[row, 0], channel)
        inside = bool(clip.inout[frame])
        gaze = clip.gaze[frame] / [width, height] if inside else np.array([-1.0, -1.0])
        torch.testing.assert_close(chunk.gaze[row], torch.tensor(gaze, dtype=torch.float32))
        assert chunk.inout[row] == float(inside)
        torch.testing.assert_close(chunk.heatmaps[row], gaze_heatmap(gaze[None])[0])
    assert chunk.inout.tolist().count(0.0) == 2, "each clip's frame 3 is out of frame"
    assert chunk.heatmaps[chunk.inout == 0].abs().sum() == 0


def test_training_windows_are_at_most_max_frames_and_contiguous(clips):
    for epoch in range(3):
        frames_of: dict[int, list[int]] = {}
        for chunk in chunk_loader(clips, batch_size=2, chunk_size=2, train=True, epoch=epoch,
                                  max_frames=4):  # fmt: skip
            for clip, frame in zip(chunk.clip_index.tolist(), chunk.frame_index.tolist(),
                                   strict=True):  # fmt: skip
                frames_of.setdefault(clip, []).append(frame)
        assert sorted(frames_of) == list(range(len(clips))), "every clip once per epoch"
        for clip, frames in frames_of.items():
            assert len(frames) == min(4, len(clips[clip]))
            assert frames == list(range(frames[0], frames[0] + len(frames)))


def plan_signature(clips, **options):
    tasks = plan_chunks(clips, batch_size=2, chunk_size=2, train=True, max_frames=3, **options)
    return [(t.batch_index, t.step_start, t.windows) for t in tasks]


def test_training_plan_is_deterministic_per_seed_and_epoch(clips):
    assert plan_signature(clips, seed=1, epoch=2) == plan_signature(clips, seed=1, epoch=2)
    assert plan_signature(clips, seed=1, epoch=2) != plan_signature(clips, seed=2, epoch=2)
    assert plan_signature(clips, seed=1, epoch=2) != plan_signature(clips, seed=1, epoch=3)


def test_a_clips_draw_does_not_depend_on_the_other_clips(clips):
    def window_of(clip_list, key):
        tasks = plan_chunks(clip_list, batch_size=1, chunk_size=9, train=True, seed=4, epoch=1)
        return next(
            (w.start, w.length, w.augmentation)
            for t in tasks
            for w in t.windows
            if clip_list[w.clip_index].key == key
        )

    key = clips[0].key
    assert window_of(clips, key) == window_of([clips[0], clips[3]], key)


def test_one_augmentation_per_clip_applied_to_all_its_frames(static_clips):
    everything = AugmentationConfig(
        jitter_probability=1, crop_probability=1, flip_probability=1, colour_probability=1,
        hue=0.1,
    )  # fmt: skip
    plain = collect(chunk_loader(static_clips, batch_size=2, chunk_size=6, train=False))[0]
    for seed in range(3):
        chunk = collect(
            chunk_loader(
                static_clips,
                batch_size=2,
                chunk_size=6,
                train=True,
                seed=seed,
                augmentation=everything,
            )  # fmt: skip
        )[0]
        for clip in range(2):
            rows = chunk.clip_index == clip
            for name in ("images", "faces", "head_channels", "heatmaps", "gaze"):
                values = getattr(chunk, name)[rows]
                assert torch.equal(values, values[:1].expand_as(values)), name
            plain_rows = plain.clip_index == clip
            assert not torch.allclose(chunk.images[rows][0], plain.images[plain_rows][0])
            assert not torch.allclose(chunk.faces[rows][0], plain.faces[plain_rows][0])


def test_flip_mirrors_image_box_and_gaze(static_clips):
    flip = AugmentationConfig(**{**ONLY, "flip_probability": 1.0})
    plain = collect(chunk_loader(static_clips, batch_size=2, chunk_size=1, train=False))[0]
    flipped = collect(
        chunk_loader(static_clips, batch_size=2, chunk_size=1, train=True, augmentation=flip)
    )[0]
    for clip in range(2):
        a, b = plain.clip_index.tolist().index(clip), flipped.clip_index.tolist().index(clip)
        torch.testing.assert_close(flipped.images[b], plain.images[a].flip(-1))
        torch.testing.assert_close(flipped.faces[b], plain.faces[a].flip(-1))
        torch.testing.assert_close(flipped.gaze[b, 0], 1 - plain.gaze[a, 0])
        torch.testing.assert_close(flipped.gaze[b, 1], plain.gaze[a, 1])
        box = static_clips[clip].boxes[0]
        mirrored = np.array([[64 - box[2], box[1], 64 - box[0], box[3]]])
        torch.testing.assert_close(
            flipped.head_channels[b, 0], head_channel(mirrored, [[64, 48]])[0]
        )


def test_crop_keeps_every_head_and_gaze_target_inside(clips):
    crop = AugmentationConfig(**{**ONLY, "crop_probability": 1.0})
    for seed in range(4):
        loader = chunk_loader(
            clips, batch_size=5, chunk_size=7, train=True, seed=seed, augmentation=crop
        )
        region_of = {w.clip_index: w.augmentation.crop for w in loader.tasks[0].windows}
        assert len(set(region_of.values())) == len(clips), "one region per clip"
        for chunk in loader:
            inside = chunk.inout == 1
            assert torch.all((chunk.gaze[inside] >= 0) & (chunk.gaze[inside] <= 1))
            assert torch.all(chunk.head_channels.sum(dim=(1, 2, 3)) > 0)
            for row in torch.nonzero(inside).flatten().tolist():
                clip, frame = int(chunk.clip_index[row]), int(chunk.frame_index[row])
                x0, y0, x1, y1 = region_of[clip]
                expected = (clips[clip].gaze[frame] - [x0, y0]) / [x1 - x0, y1 - y0]
                actual = chunk.gaze[row].double()
                torch.testing.assert_close(actual, torch.tensor(expected), atol=1e-6, rtol=0)


def assert_same_chunks(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        for name in ("images", "faces", "head_channels", "heatmaps", "inout", "gaze",
                     "batch_sizes", "clip_index", "frame_index"):  # fmt: skip
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert (a.batch_index, a.chunk_index, a.first) == (b.batch_index, b.chunk_index, b.first)


def test_results_do_not_depend_on_num_workers(clips):
    options = dict(batch_size=2, chunk_size=2, train=True, seed=5, epoch=1, max_frames=4)
    serial = collect(chunk_loader(clips, num_workers=0, **options))
    parallel = collect(chunk_loader(clips, num_workers=2, **options))
    assert_same_chunks(serial, parallel)


def test_same_seed_same_chunks_and_the_global_rng_is_untouched(clips):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = collect(chunk_loader(clips, batch_size=2, chunk_size=3, train=True, seed=9))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert_same_chunks(first, collect(chunk_loader(clips, batch_size=2, chunk_size=3,
                                                   train=True, seed=9)))  # fmt: skip
    other = collect(chunk_loader(clips, batch_size=2, chunk_size=3, train=True, seed=10))
    assert any(
        a.images.shape != b.images.shape or not torch.equal(a.images, b.images)
        for a, b in zip(first, other, strict=False)
    )


def test_chunk_to_moves_frames_and_keeps_bookkeeping_on_the_cpu(clips):
    chunk = collect(chunk_loader(clips[:1], batch_size=1, chunk_size=2, train=False))[0]
    moved = chunk.to("meta")
    assert moved.images.device.type == "meta" and moved.heatmaps.device.type == "meta"
    assert moved.batch_sizes.device.type == "cpu" and moved.clip_index.device.type == "cpu"
    assert chunk.images.device.type == "cpu", "the original is left as it was"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_pinned_chunks_on_cuda(clips):
    loader = chunk_loader(clips[:2], batch_size=2, chunk_size=2, train=False, num_workers=1)
    chunk = next(iter(loader))
    assert chunk.images.is_pinned()
    assert chunk.to("cuda", non_blocking=True).images.is_cuda


def test_sizes_and_drop_last(clips):
    loader = chunk_loader(clips, batch_size=2, chunk_size=3, train=False)
    assert loader.frames == sum(LENGTHS) and loader.batches == 3
    dropped = chunk_loader(clips, batch_size=2, chunk_size=3, train=True, drop_last=True)
    assert dropped.batches == 2
    with pytest.raises(ValueError, match="must be >= 1"):
        chunk_loader(clips, batch_size=0, chunk_size=3, train=False)


def test_eval_head_expansion_grows_the_face_crop(clips):
    plain = collect(chunk_loader(clips[:1], batch_size=1, chunk_size=1, train=False))[0]
    grown = collect(
        chunk_loader(clips[:1], batch_size=1, chunk_size=1, train=False, eval_head_expansion=0.1)
    )[0]
    assert grown.head_channels.sum() > plain.head_channels.sum()
    assert torch.equal(grown.images, plain.images)


def test_jpeg_frames_decode_at_reduced_scale_when_resolution_allows(tmp_path):
    # A 1280x720 JPEG with a big head: both outputs keep >= 224 px from a 1/2-scale decode.
    frames = [FrameSpec("00000001", (100.0, 100.0, 600.0, 600.0), (900.0, 300.0))]
    write_clip(tmp_path, layout="videoattentiontarget", subset="test", show="S", clip="c",
               person="s00", frames=frames, size=(1280, 720))  # fmt: skip
    clips = build_index(SourceSpec(root=tmp_path))
    chunk = collect(chunk_loader(clips, batch_size=1, chunk_size=1, train=False))[0]
    full = Image.open(clips[0].frames[0]).convert("RGB")
    reference = normalised(full.resize((224, 224), Image.Resampling.BILINEAR))
    assert (chunk.images[0] - reference).abs().mean() < 0.05
    assert Path(clips[0].frames[0]).suffix == ".jpg"
    # The 500 px head needs 224/500 of the frame's resolution: the loader decoded at 1/2.
    half = open_rgb(clips[0].frames[0], (1280 * 224 / 500, 720 * 224 / 500))
    assert half.scale == 0.5 and half.image.size == (640, 360)
    expected = normalised(half.image.resize((224, 224), Image.Resampling.BILINEAR))
    torch.testing.assert_close(chunk.images[0], expected, atol=1e-5, rtol=0)
    assert not torch.allclose(chunk.images[0], reference, atol=1e-3, rtol=0)
