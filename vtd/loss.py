"""The published training loss of one chunk: heatmap MSE on in-frame frames plus in/out BCE."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

HEATMAP_LOSS_WEIGHT = 10_000.0
INOUT_LOSS_WEIGHT = 100.0


class ChunkLoss(NamedTuple):
    total: torch.Tensor
    l2: torch.Tensor
    xent: torch.Tensor


def chunk_loss(
    heatmaps: torch.Tensor,
    targets: torch.Tensor,
    inout_logits: torch.Tensor,
    inout_labels: torch.Tensor,
    *,
    in_frame_total: float | None = None,
    frames_total: float | None = None,
) -> ChunkLoss:
    """Loss of one chunk of N frames, as the authors' temporal training computed it.

    l2: per-frame mean squared error between predicted (N, [1,] 64, 64) and target heatmaps,
    times 10,000, kept for in-frame frames (label 1), summed and divided by the number of
    in-frame frames. xent: binary cross-entropy of the in/out logits, mean over frames, times
    100. Unlike the published 0/0 = NaN, a chunk with no in-frame frame has l2 = 0.

    `in_frame_total` and `frames_total` replace the two denominators when a chunk is split into
    micro-batches for gradient accumulation: with the whole chunk's counts, the micro-batch
    losses sum to exactly the whole chunk's loss.
    """
    labels = inout_labels.reshape(-1).to(heatmaps.dtype)
    predicted = heatmaps.reshape(targets.shape)
    per_frame = F.mse_loss(predicted, targets.to(predicted.dtype), reduction="none")
    per_frame = per_frame.flatten(1).mean(dim=1) * HEATMAP_LOSS_WEIGHT
    in_frame = labels.sum() if in_frame_total is None else in_frame_total
    l2 = (per_frame * labels).sum() / in_frame if in_frame > 0 else per_frame.sum() * 0.0
    frames = len(labels) if frames_total is None else frames_total
    xent = F.binary_cross_entropy_with_logits(
        inout_logits.reshape(-1).to(labels.dtype), labels, reduction="sum"
    )
    xent = xent / frames * INOUT_LOSS_WEIGHT
    return ChunkLoss(total=l2 + xent, l2=l2, xent=xent)
