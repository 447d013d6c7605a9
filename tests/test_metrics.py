"""Batched metrics equal their per-frame references, ties and edge cases included."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from vtd.data.targets import gaze_heatmap
from vtd.evaluate import argmax_points, auc, average_precision, gaze_distance, roc_auc, to_8bit
from vtd.train import chunk_loss


def test_roc_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    # few distinct values: most scores are tied with many others
    scores = rng.integers(0, 6, size=(32, 400)).astype(np.float64)
    labels = rng.random((32, 400)) < rng.uniform(0.05, 0.6, size=(32, 1))
    ours = roc_auc(torch.from_numpy(scores), torch.from_numpy(labels)).numpy()
    reference = [roc_auc_score(y, s) for y, s in zip(labels, scores, strict=True)]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)


def test_roc_auc_undefined_for_one_class():
    scores = torch.rand(2, 10)
    labels = torch.stack([torch.ones(10, dtype=torch.bool), torch.zeros(10, dtype=torch.bool)])
    assert torch.isnan(roc_auc(scores, labels)).all()


def test_auc_equals_published_per_frame_recipe():
    rng = np.random.default_rng(1)
    maps = rng.random((8, 64, 64))
    maps[:, 10:20, 10:20] = 0.5  # a plateau of ties
    gaze = rng.uniform(0, 1, size=(8, 2))
    truth = gaze_heatmap(gaze).numpy() > 0
    scaled = np.floor(
        (maps - maps.min((1, 2), keepdims=True)) * 255 / np.ptp(maps, (1, 2))[:, None, None] + 0.5
    )
    reference = [roc_auc_score(t.ravel(), s.ravel()) for t, s in zip(truth, scaled, strict=True)]
    ours = auc(torch.from_numpy(maps), torch.from_numpy(gaze)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)


def test_auc_is_one_for_the_target_region_and_lower_elsewhere():
    gaze = torch.tensor([[0.25, 0.75], [0.6, 0.1]], dtype=torch.float64)
    region = (gaze_heatmap(gaze) > 0).double()
    assert torch.equal(auc(region, gaze), torch.ones(2, dtype=torch.float64))
    assert (auc(region.flip(0), gaze) < 0.6).all()


def test_to_8bit_constant_and_range():
    maps = torch.stack([torch.full((4, 4), 3.0), torch.linspace(-1, 1, 16).reshape(4, 4)])
    scaled = to_8bit(maps)
    assert scaled[0].eq(0).all()
    assert scaled[1].min() == 0 and scaled[1].max() == 255
    assert torch.equal(scaled, scaled.round())


def test_argmax_takes_first_maximum_and_distance():
    maps = torch.zeros(1, 64, 64)
    maps[0, 10, 30] = 1.0
    maps[0, 40, 5] = 1.0  # a later tie in row-major order loses
    assert argmax_points(maps).tolist() == [[30 / 64, 10 / 64]]
    gaze = torch.tensor([[30 / 64, 10 / 64 + 0.5]])
    assert gaze_distance(maps, gaze).item() == pytest.approx(0.5)


def test_average_precision_equals_sklearn_with_ties():
    rng = np.random.default_rng(2)
    for _ in range(20):
        scores = np.round(rng.normal(size=60), 1)
        labels = rng.random(60) < 0.4
        ours = average_precision(torch.from_numpy(scores), torch.from_numpy(labels))
        assert ours == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_average_precision_without_positives_is_nan():
    assert np.isnan(average_precision(torch.rand(5), torch.zeros(5)))


def test_loss_of_an_all_out_of_frame_chunk_is_finite():
    heatmaps = torch.rand(4, 1, 64, 64, requires_grad=True)
    loss = chunk_loss(heatmaps, torch.zeros(4, 64, 64), torch.randn(4, 1), torch.zeros(4))
    assert torch.isfinite(loss.total) and loss.l2.item() == 0.0
    loss.total.backward()
    assert heatmaps.grad is not None and heatmaps.grad.eq(0).all()


def test_micro_batch_losses_sum_to_the_whole_chunk_loss():
    torch.manual_seed(0)
    heatmaps, targets = torch.rand(6, 1, 64, 64), torch.rand(6, 64, 64)
    logits, labels = torch.randn(6, 1), torch.tensor([1.0, 0, 1, 1, 0, 1])
    whole = chunk_loss(heatmaps, targets, logits, labels)
    parts = [
        chunk_loss(
            heatmaps[s], targets[s], logits[s], labels[s], in_frame_total=4.0, frames_total=6
        )
        for s in (slice(0, 2), slice(2, 6))
    ]
    assert sum(p.total for p in parts).item() == pytest.approx(whole.total.item(), rel=1e-6)
