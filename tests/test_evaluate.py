"""The evaluation loop: every frame once, the frozen-part cache, checkpoints by epoch."""

import numpy as np
import pytest
import torch

from vtd.data import load_splits
from vtd.evaluate import EvaluationData, evaluate
from vtd.evaluate.checkpoints import checkpoint_files, evaluate_checkpoints
from vtd.model import VTD, ModelConfig, save_checkpoint
from vtd.numerics import NonFiniteOutput

SMALL = ModelConfig(variant="small")


@pytest.fixture(scope="module")
def test_clips(tiny_demo_data):
    return load_splits(tiny_demo_data).test


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VTD(SMALL).eval()


def test_every_frame_is_evaluated_once_with_one_row_per_clip(model, test_clips):
    result = evaluate(model, EvaluationData(test_clips, batch_size=2, chunk_size=3))
    frames = sum(len(clip) for clip in test_clips)
    in_frame = sum(int(clip.inout.sum()) for clip in test_clips)
    assert result.metrics.frames == frames and result.metrics.in_frame == in_frame
    assert len(result.rows) == len(test_clips)
    assert result.rows["frames"].sum() == frames
    assert set(result.rows["clip"]) == {clip.clip for clip in test_clips}
    assert 0 <= result.metrics.auc <= 1 and result.metrics.dist >= 0
    # the split's mean AUC weighs frames, not clips
    weighted = (result.rows["auc"] * result.rows["in_frame"]).sum() / in_frame
    assert result.metrics.auc == pytest.approx(weighted)


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_cached_evaluation_equals_uncached(model, test_clips, tmp_path, where):
    plain = evaluate(model, EvaluationData(test_clips, batch_size=2, chunk_size=3))
    cached_data = EvaluationData(
        test_clips, batch_size=2, chunk_size=3, cache=where, cache_dir=tmp_path
    )
    first = evaluate(model, cached_data)
    assert cached_data._cache is not None and cached_data._cache.complete
    second = evaluate(model, cached_data)  # from the cache: no image is decoded
    for result in (first, second):
        assert result.metrics == plain.metrics
        np.testing.assert_allclose(result.rows["auc"], plain.rows["auc"])
    cached_data.close()
    assert not any(tmp_path.iterdir()), "the disk cache is removed on close"


def test_cache_follows_the_trained_part(test_clips):
    torch.manual_seed(1)
    network = VTD(SMALL)
    data = EvaluationData(test_clips, batch_size=2, chunk_size=3, cache="memory")
    before = evaluate(network, data)
    with torch.no_grad():
        network.conv4.bias.add_(5.0)  # the trained part changes between epochs
    after_cached = evaluate(network, data)
    after_plain = evaluate(network, EvaluationData(test_clips, batch_size=2, chunk_size=3))
    assert after_cached.metrics == after_plain.metrics != before.metrics


def test_evaluate_checkpoints_in_epoch_order(test_clips, tmp_path):
    for epoch in (1, 2, 10):
        torch.manual_seed(epoch)
        save_checkpoint(VTD(SMALL), tmp_path / f"epoch_{epoch}.pt")
    files = checkpoint_files(tmp_path)
    assert [f.name for f in files] == ["epoch_1.pt", "epoch_2.pt", "epoch_10.pt"]
    table = evaluate_checkpoints(tmp_path, test_clips, model=SMALL, batch_size=2, chunk_size=3)
    assert list(table["checkpoint"]) == ["epoch_1.pt", "epoch_2.pt", "epoch_10.pt"]
    assert table["auc"].between(0, 1).all() and table["auc"].nunique() == 3


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .pt checkpoint"):
        checkpoint_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        checkpoint_files(tmp_path / "nope.pt")


def test_a_non_finite_heatmap_never_becomes_a_metric(test_clips):
    broken = VTD(SMALL).eval()
    with torch.no_grad():
        broken.conv4.bias.fill_(float("nan"))  # every heatmap NaN, as after a diverged step
    with pytest.raises(NonFiniteOutput, match=r"output is not finite .* no metric computed"):
        evaluate(broken, EvaluationData(test_clips, batch_size=2, chunk_size=3))
