"""The published evaluation metrics, batched as tensor operations on the maps' device.

Per in-frame frame: AUC of the predicted heatmap against the binarised Gaussian around the
gaze point, and the L2 distance between the heatmap's argmax and the gaze point, both in the
64x64 output grid's normalised coordinates; over all frames: the average precision of the
in/out logits. `tests/data/golden/utils_*.npz` hold the authors' values for these functions.

Evaluation runs every epoch of every trial, so nothing here calls scikit-learn per frame.
"""

from __future__ import annotations

import torch

from vtd.data.targets import HEATMAP_SIGMA, gaze_heatmap


def _auc_from_counts(positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """AUC of each row from per-score-level counts (N, G), levels in ascending score order.

    A positive beats every negative of a lower level and ties half of those of its own level:
    the Mann-Whitney U statistic with ties averaged, which is what ROC AUC computes.
    """
    negatives_below = torch.cumsum(negatives, dim=1) - negatives
    wins = (positives * (negatives_below + 0.5 * negatives)).sum(dim=1)
    return wins / (positives.sum(dim=1) * negatives.sum(dim=1))


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each row of `scores` (N, L) against binary `labels` (N, L), ties averaged.

    Equal to scikit-learn's `roc_auc_score` row by row; NaN for a row with only one class,
    where the AUC is undefined.
    """
    scores = scores.reshape(len(scores), -1).to(torch.float64)
    positives = labels.reshape(len(labels), -1).to(torch.bool)
    ordered, order = torch.sort(scores, dim=1)
    sorted_positive = positives.gather(1, order).to(torch.float64)
    starts_level = torch.ones_like(ordered, dtype=torch.bool)
    starts_level[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    level = torch.cumsum(starts_level, dim=1) - 1
    pos_counts = torch.zeros_like(ordered).scatter_add_(1, level, sorted_positive)
    neg_counts = torch.zeros_like(ordered).scatter_add_(1, level, 1 - sorted_positive)
    return _auc_from_counts(pos_counts, neg_counts)


def _roc_auc_of_levels(levels: torch.Tensor, labels: torch.Tensor, n_levels: int) -> torch.Tensor:
    """`roc_auc` for integer scores in 0..n_levels-1: two histograms instead of a sort."""
    rows = len(levels)
    flat = levels.reshape(rows, -1).to(torch.int64)
    flat = flat + n_levels * torch.arange(rows, device=flat.device)[:, None]
    positives = labels.reshape(rows, -1).to(torch.bool)
    size = rows * n_levels
    totals = torch.bincount(flat.reshape(-1), minlength=size)
    pos_counts = torch.bincount(flat[positives], minlength=size)
    pos_counts = pos_counts.reshape(rows, n_levels).to(torch.float64)
    neg_counts = totals.reshape(rows, n_levels).to(torch.float64) - pos_counts
    return _auc_from_counts(pos_counts, neg_counts)


def to_8bit(heatmaps: torch.Tensor) -> torch.Tensor:
    """Rescale each map linearly to 0..255 and round, as the published `imresize` call did.

    The authors resized the prediction to its own size with scipy's `imresize`, whose only
    effect was scipy's `bytescale`: (x - min) * 255 / (max - min), clipped, plus 0.5, truncated.
    A constant map has (max - min) replaced by 1.
    """
    flat = heatmaps.reshape(len(heatmaps), -1).to(torch.float64)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    span = torch.where(span == 0, torch.ones_like(span), span)
    scaled = ((flat - low) * (255.0 / span)).clamp(0, 255)
    return torch.floor(scaled + 0.5).reshape(heatmaps.shape)


def auc(pred_heatmaps: torch.Tensor, gaze: torch.Tensor) -> torch.Tensor:
    """Published AUC (N,) of predicted heatmaps (N, H, W) for normalised gaze points (N, 2).

    Ground truth: the Gaussian target at the gaze point (sigma 3 on the map's grid),
    binarised as > 0; prediction: the map rescaled to 8 bits.
    """
    maps = pred_heatmaps.reshape(len(pred_heatmaps), *pred_heatmaps.shape[-2:])
    truth = gaze_heatmap(gaze, size=maps.shape[-1], sigma=HEATMAP_SIGMA).to(maps.device) > 0
    return _roc_auc_of_levels(to_8bit(maps), truth, n_levels=256)


def argmax_points(heatmaps: torch.Tensor) -> torch.Tensor:
    """Normalised (x, y) (N, 2) of each map's first maximum in row-major order, as published."""
    maps = heatmaps.reshape(len(heatmaps), *heatmaps.shape[-2:])
    height, width = maps.shape[-2:]
    index = maps.reshape(len(maps), -1).argmax(dim=1)
    x = (index % width).to(torch.float64) / width
    y = torch.div(index, width, rounding_mode="floor").to(torch.float64) / height
    return torch.stack([x, y], dim=1)


def gaze_distance(pred_heatmaps: torch.Tensor, gaze: torch.Tensor) -> torch.Tensor:
    """L2 distance (N,) between each heatmap's argmax and the gaze point, normalised coordinates.

    The published code divides both argmax coordinates by the output resolution (64), so the
    distance is in units of the image's width and height.
    """
    points = argmax_points(pred_heatmaps)
    return torch.linalg.vector_norm(points - gaze.to(points), dim=1)


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Average precision of `scores` (N,) for binary `labels` (N,), as scikit-learn computes it.

    AP = sum over distinct score thresholds, highest first, of (R_k - R_{k-1}) * P_k, tied
    scores forming one threshold. NaN when there is no positive label.
    """
    scores = scores.reshape(-1).to(torch.float64)
    truth = labels.reshape(-1).to(torch.float64)
    if truth.sum() == 0:
        return float("nan")
    order = torch.argsort(scores, descending=True, stable=True)
    ordered, truth = scores[order], truth[order]
    true_pos = torch.cumsum(truth, dim=0)
    seen = torch.arange(1, len(truth) + 1, dtype=torch.float64, device=truth.device)
    # The last position of each run of equal scores closes a threshold.
    closes = torch.ones_like(ordered, dtype=torch.bool)
    closes[:-1] = ordered[1:] != ordered[:-1]
    precision = true_pos[closes] / seen[closes]
    recall = true_pos[closes] / true_pos[-1]
    recall_gain = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((recall_gain * precision).sum())


def inout_ap(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Published in/out average precision: in-frame (label 1) scored by the in/out logits."""
    return average_precision(logits, labels)
