"""The frozen part's evaluation outputs shared by the runs of a study (issue 13, item 2)."""

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from vtd.data import load_splits
from vtd.evaluate import EvaluationData, evaluate
from vtd.evaluate.shared_cache import SharedFeatureCache, frozen_hash
from vtd.model import VTD, ModelConfig, save_checkpoint
from vtd.train import FineTuning, TrainConfig, finetune

SMALL = ModelConfig(variant="small")


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(7)
    path = tmp_path / "init.pt"
    save_checkpoint(VTD(SMALL), path)
    return path


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Frames the frozen part encodes, one entry per call of `VTD.encode`."""
    calls: list[int] = []
    original = VTD.encode

    def counting(self, images, *args, **kwargs):
        calls.append(len(images))
        return original(self, images, *args, **kwargs)

    monkeypatch.setattr(VTD, "encode", counting)
    return calls


def trial(data, tmp_path: Path, weights: Path, name: str, **overrides) -> TrainConfig:
    settings = {
        "data": data,
        "model": SMALL,
        "initial_weights": weights,
        "epochs": 1,
        "batch_size": 4,
        "chunk_size": 3,
        "output_dir": tmp_path / name,
        "checkpoints": "none",
        "eval_cache_dir": tmp_path / "study" / "eval_cache",
        # evaluation alone here; training windows: tests/test_train_features.py
        "share_training_features": False,
    }
    return TrainConfig(**{**settings, **overrides})


def training_encodes(config: TrainConfig) -> int:
    """Frames a run's training encodes: every training window of every epoch."""
    return sum(min(len(clip), config.max_frames) for clip in load_splits(config.data).train) * (
        config.epochs
    )


def test_second_trial_reads_the_first_trials_features_and_gets_uncached_metrics(
    tiny_demo_data, tmp_path, weights, encode_calls
):
    first = finetune(trial(tiny_demo_data, tmp_path, weights, "t0", lr=1e-4))
    first_config = trial(tiny_demo_data, tmp_path, weights, "t0")
    after_first = sum(encode_calls)
    assert after_first > training_encodes(first_config), "the first trial encodes evaluation"
    entries = SharedFeatureCache(tmp_path / "study" / "eval_cache", 2**30).entries()
    assert len(entries) == 2, "one entry per evaluation split (validation, test)"

    # the second trial: another learning rate, the weights copied to another path
    copy = tmp_path / "elsewhere" / "same.pt"
    copy.parent.mkdir()
    shutil.copy2(weights, copy)
    second_config = trial(tiny_demo_data, tmp_path, copy, "t1", lr=3e-4)
    encode_calls.clear()
    second = finetune(second_config)
    assert sum(encode_calls) == training_encodes(second_config), (
        "no evaluation frame went through the frozen part"
    )

    encode_calls.clear()
    uncached = finetune(
        trial(tiny_demo_data, tmp_path, weights, "t2", lr=3e-4, eval_feature_cache="off")
    )
    assert sum(encode_calls) > training_encodes(second_config)
    for cached, plain in zip(second.records, uncached.records, strict=True):
        assert cached.validation == plain.validation
        assert cached.test == plain.test
    assert first.records[0].test != second.records[0].test  # another lr, another result


def test_what_changes_the_frozen_outputs_changes_the_key(tiny_demo_data, tmp_path, weights):
    clips = load_splits(tiny_demo_data).test[:1]
    cache = SharedFeatureCache(tmp_path / "cache", 2**30)
    model = VTD(SMALL)
    identity = frozen_hash(model, model.frozen_parameters())

    def run(**overrides) -> Counter:
        settings = {"batch_size": 2, "chunk_size": 3, "cache": "memory", "frozen_weights": identity}
        data = EvaluationData(clips, shared_cache=cache, **{**settings, **overrides})
        evaluate(model, data)
        data.close()
        return data.stats

    assert run()["shared_writes"] == 1
    assert run()["shared_hits"] == 1
    assert run(chunk_size=2)["shared_writes"] == 1  # other chunking
    assert run(head_expansion=0.1)["shared_writes"] == 1  # other evaluation transform
    assert run(channels_last=True)["shared_writes"] == 1
    assert run(frozen_weights="0" * 64)["shared_writes"] == 1  # other weights
    frame = clips[0].frames[0]
    stat = frame.stat()
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a frame rewritten
    assert run()["shared_writes"] == 1
    assert len(cache.entries()) == 6


def test_cache_is_bounded_least_recently_used_dropped(tiny_demo_data, tmp_path, weights):
    clips = load_splits(tiny_demo_data).test[:1]
    model = VTD(SMALL)
    probe = SharedFeatureCache(tmp_path / "probe", 2**30)
    data = EvaluationData(
        clips, batch_size=2, chunk_size=3, shared_cache=probe, frozen_weights="probe", cache="disk"
    )
    evaluate(model, data)
    entry_bytes = probe.entries()[0][1]

    cache = SharedFeatureCache(tmp_path / "cache", int(2.5 * entry_bytes))

    def run(identity: str) -> Counter:
        data = EvaluationData(
            clips,
            batch_size=2,
            chunk_size=3,
            shared_cache=cache,
            frozen_weights=identity,
            cache="memory",
        )
        evaluate(model, data)
        return data.stats

    run("a")
    run("b")
    assert run("a")["shared_hits"] == 1  # a is now the most recently used
    run("c")  # three entries do not fit: b, the least recently used, goes
    assert len(cache.entries()) == 2
    assert run("a")["shared_hits"] == 1
    assert run("b")["shared_writes"] == 1
    assert not list(cache.folder.glob(".tmp-*"))

    tiny = SharedFeatureCache(tmp_path / "tiny", entry_bytes // 2)
    data = EvaluationData(
        clips, batch_size=2, chunk_size=3, shared_cache=tiny, frozen_weights="x", cache="disk"
    )
    evaluate(model, data)  # larger than the whole cache: evaluated, not shared
    assert data.stats["shared_writes"] == 0 and not tiny.entries()


def test_racing_writers_and_a_reader_during_eviction(tiny_demo_data, tmp_path):
    clips = load_splits(tiny_demo_data).test[:1]
    model = VTD(SMALL)
    cache = SharedFeatureCache(tmp_path / "cache", 2**30)
    make = lambda: EvaluationData(  # noqa: E731
        clips, batch_size=2, chunk_size=3, shared_cache=cache, frozen_weights="w", cache="disk"
    )
    one, two = make(), make()
    # two writers of the same key, interleaved: both finish, one entry stays
    first_pass, second_pass = (
        one.chunks(model, torch.device("cpu")),
        two.chunks(model, torch.device("cpu")),
    )
    for _ in zip(first_pass, second_pass, strict=True):
        pass
    assert len(cache.entries()) == 1
    assert one.stats["shared_writes"] == two.stats["shared_writes"] == 1

    # a reader half way through holds the entry: eviction skips it, nothing is torn
    reader = make().chunks(model, torch.device("cpu"))
    next(reader)
    cache.max_bytes = 0
    cache.evict()
    assert len(cache.entries()) == 1
    rest = list(reader)
    assert rest, "the reader finished its entry"
    cache.evict()
    assert not cache.entries()


def test_config_switch_and_fresh_weights_share_nothing(tiny_demo_data, tmp_path, weights):
    def shared(**overrides) -> bool:
        run = FineTuning(trial(tiny_demo_data, tmp_path, **{"weights": weights, **overrides}))
        try:
            return all(data._shared is not None for data in run.evaluation.values())
        finally:
            run.close()

    assert shared(name="on")
    assert not shared(name="off", eval_cache_gb=0)
    assert not shared(name="no-cache", eval_feature_cache="off")
    # a fresh frozen part is known by its content: the same seed shares, another does not
    assert shared(name="fresh", weights=None)
    assert not shared(name="all-train", freeze="none")


def test_a_sweep_puts_the_cache_in_the_study_folder(tmp_path):
    from vtd.sweep.plan.config import SweepFileError, load_sweep

    text = """\
study: shared
data:
  sources: [data/objectattention]
  validation: {groups: 1}
training:
  model: {variant: small}
  eval_cache_gb: 2
search_space:
  lr: [1e-4, 2e-4]
"""
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    sweep = load_sweep(path)
    assert sweep.base.eval_cache_dir == sweep.study_dir / "eval_cache"
    assert sweep.base.eval_cache_gb == 2
    path.write_text(text.replace("  eval_cache_gb: 2", "  eval_cache_dir: elsewhere"))
    with pytest.raises(SweepFileError, match=r":7: training\.eval_cache_dir: is set by the sweep"):
        load_sweep(path)


def test_training_windows_fit_the_bound_and_go_least_recently_used_first(tmp_path):
    cache = SharedFeatureCache(tmp_path / "cache", 2**30)
    window = {
        "scene": torch.arange(1000.0).reshape(10, 100),
        "inout": torch.zeros(10, 4),
        "known": torch.ones(10, dtype=torch.bool),
    }
    assert cache.write_windows({"a": window}) == 1
    size = cache.entries()[0][1]
    cache.max_bytes = 2 * size + size // 2
    # "c" does not fit after "b": not written, nothing evicted
    assert cache.write_windows({"b": window, "c": window}) == 1
    assert sorted(entry.name for entry, _, _ in cache.entries()) == ["a.pt", "b.pt"]
    assert not list(cache.folder.glob(".tmp-*"))

    b = cache.folder / "windows" / "b.pt"
    os.utime(b, (b.stat().st_atime - 60, b.stat().st_mtime - 60))
    read = cache.read_window("a")  # "a" used now, "b" a minute ago
    assert read is not None and torch.equal(read["scene"], window["scene"])
    cache.max_bytes = size + size // 2
    cache.evict()
    assert [entry.name for entry, _, _ in cache.entries()] == ["a.pt"]
    assert cache.read_window("b") is None

    stale = cache.folder / ".tmp-x-1-abcd.pt"  # a killed writer's, over an hour old
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    cache.evict()
    assert not stale.exists()


def test_an_upgrade_of_the_code_that_encodes_changes_every_key(monkeypatch):
    from vtd.evaluate import shared_cache

    before = shared_cache.evaluation_key(weights="w")
    assert shared_cache.evaluation_key(weights="w") == before
    monkeypatch.setattr(shared_cache, "code_fingerprint", lambda: "vtd.model or vtd.data changed")
    assert shared_cache.evaluation_key(weights="w") != before
