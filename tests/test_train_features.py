"""Training windows' frozen-part outputs shared by the runs of a study (issue 13)."""

import errno
import math
from collections import Counter
from pathlib import Path

import pytest

from vtd.data import load_splits
from vtd.data.loader import plan_chunks
from vtd.evaluate.shared_cache import SharedFeatureCache
from vtd.model import ModelConfig
from vtd.train import FineTuning, TrainConfig, TrainResult
from vtd.train.chunks import loader_options

SMALL = ModelConfig(variant="small")


def config(data, tmp_path: Path, name: str, **overrides) -> TrainConfig:
    settings = {
        "data": data,
        "model": SMALL,
        "epochs": 1,
        "batch_size": 2,
        "chunk_size": 3,
        "output_dir": tmp_path / name,
        "checkpoints": "none",
        "eval_cache_dir": tmp_path / "study" / "eval_cache",
    }
    return TrainConfig(**{**settings, **overrides})


def run(config: TrainConfig) -> tuple[TrainResult, Counter[str]]:
    """Train; the result and what the training windows' sharing counted."""
    fine_tuning = FineTuning(config)
    try:
        result = fine_tuning.train()
        features = fine_tuning.training_features
        return result, Counter(features.stats) if features is not None else Counter()
    finally:
        fine_tuning.close()


def single_frame_chunks(config: TrainConfig) -> int:
    """Frames a run must encode itself: those of chunks holding one frame (the quirk's)."""
    clips = load_splits(config.data).train
    return sum(
        1
        for epoch in range(1, config.epochs + 1)
        for task in plan_chunks(clips, loader_options(config, train=True, epoch=epoch))
        if len(task.frames()) == 1
    )


def test_another_cell_reads_the_windows_the_first_one_encoded(tiny_demo_data, tmp_path):
    # fresh weights: the frozen part is known by its content, the same for the same seed
    first, first_stats = run(config(tiny_demo_data, tmp_path, "b2c3"))
    assert first_stats["read"] == 0 and first_stats["written"] > 0

    other_cell = config(tiny_demo_data, tmp_path, "b4c2", batch_size=4, chunk_size=2)
    shared, stats = run(other_cell)
    assert stats["encoded"] == single_frame_chunks(other_cell)
    assert stats["read"] > 0

    # Equal to its standalone run up to float rounding: the frozen part ran in other chunks.
    alone, alone_stats = run(
        config(tiny_demo_data, tmp_path, "alone", batch_size=4, chunk_size=2, eval_cache_gb=0)
    )
    assert alone_stats == {}
    for with_cache, without in zip(shared.records, alone.records, strict=True):
        for split in ("validation", "test"):
            a, b = getattr(with_cache, split), getattr(without, split)
            assert math.isclose(a.auc, b.auc, abs_tol=1e-4), (split, a, b)
            assert math.isclose(a.dist, b.dist, abs_tol=1e-4), (split, a, b)
        assert math.isclose(with_cache.train_loss, without.train_loss, rel_tol=1e-4)


def test_the_same_chunking_reads_exactly_what_it_would_compute(tiny_demo_data, tmp_path):
    run(config(tiny_demo_data, tmp_path, "first", lr=1e-4))
    shared, stats = run(config(tiny_demo_data, tmp_path, "second", lr=3e-4))
    assert stats["encoded"] == single_frame_chunks(config(tiny_demo_data, tmp_path, "x"))
    alone, _ = run(config(tiny_demo_data, tmp_path, "alone", lr=3e-4, eval_cache_gb=0))
    for with_cache, without in zip(shared.records, alone.records, strict=True):
        assert with_cache.validation == without.validation
        assert with_cache.test == without.test
        assert with_cache.train_loss == without.train_loss


@pytest.mark.parametrize(
    "overrides",
    [{"seed": 1}, {"share_training_features": False}],
    ids=["another seed: other windows", "switched off"],
)
def test_nothing_is_read_across_seeds_or_when_switched_off(tiny_demo_data, tmp_path, overrides):
    run(config(tiny_demo_data, tmp_path, "first"))
    _, stats = run(config(tiny_demo_data, tmp_path, "second", **overrides))
    assert stats["read"] == 0


def test_one_frame_chunks_are_never_stored(tiny_demo_data, tmp_path):
    _, stats = run(config(tiny_demo_data, tmp_path, "b1c1", batch_size=1, chunk_size=1))
    assert stats["written"] == 0 and stats["read"] == 0
    assert stats["encoded"] == single_frame_chunks(
        config(tiny_demo_data, tmp_path, "b1c1", batch_size=1, chunk_size=1)
    )


def test_windows_are_written_while_they_fit_and_evict_nothing(tiny_demo_data, tmp_path):
    probe, _ = run(config(tiny_demo_data, tmp_path / "probe", "probe", epochs=1))
    probe_cache = SharedFeatureCache(tmp_path / "probe" / "study" / "eval_cache", 2**40)
    sizes = sorted(size for entry, size, _ in probe_cache.entries() if entry.is_file())
    evaluation = sum(size for entry, size, _ in probe_cache.entries() if entry.is_dir())
    bound = evaluation + sum(sizes[:2]) + sizes[2] // 2  # room for two windows only
    limited = config(tiny_demo_data, tmp_path, "limited", epochs=1, eval_cache_gb=bound / 2**30)
    _, stats = run(limited)
    cache = SharedFeatureCache(limited.eval_cache_dir, bound)
    assert 0 < stats["written"] < len(sizes)
    assert sum(size for _, size, _ in cache.entries()) <= bound
    written = sorted(entry.name for entry, _, _ in cache.entries() if entry.is_file())
    _, again = run(config(tiny_demo_data, tmp_path, "again", epochs=1, eval_cache_gb=bound / 2**30))
    assert again["read"] > 0
    assert sorted(entry.name for entry, _, _ in cache.entries() if entry.is_file()) == written


def test_a_full_disk_costs_the_sharing_not_the_run(tiny_demo_data, tmp_path, monkeypatch, caplog):
    import torch

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)  # every cache write (checkpoints are off)
    result, stats = run(config(tiny_demo_data, tmp_path, "full-disk"))
    assert [record.epoch for record in result.records] == [1]
    assert stats["written"] == 0 and stats["encoded"] > 0
    assert "not shared: [Errno 28] No space left on device" in caplog.text
    assert not list((tmp_path / "study" / "eval_cache").rglob("*.pt"))


def test_a_damaged_window_is_encoded_again(tiny_demo_data, tmp_path, caplog):
    first, _ = run(config(tiny_demo_data, tmp_path, "first"))
    windows = list((tmp_path / "study" / "eval_cache" / "windows").glob("*.pt"))
    assert windows
    for window in windows:
        window.write_bytes(b"not a torch file")
    again, stats = run(config(tiny_demo_data, tmp_path, "again"))
    assert stats["read"] == 0
    assert "unreadable" in caplog.text
    assert again.records[0].test == first.records[0].test
