"""How the recipe feeds chunks to the model: the loader options of a run's training and
evaluation chunks, micro-batches of a packed chunk, and channels-last inputs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from vtd.data import Chunk, LoaderOptions
from vtd.train.config import TrainConfig


def loader_options(config: TrainConfig, *, train: bool, epoch: int = 0) -> LoaderOptions:
    """The chunks `config` trains on (in `epoch`), or evaluates on (`train=False`)."""
    if train:
        return LoaderOptions(
            batch_size=config.batch_size,
            chunk_size=config.chunk_size,
            train=True,
            seed=config.seed,
            epoch=epoch,
            max_frames=config.max_frames,
            augmentation=config.data.augmentation,
        )
    return LoaderOptions(
        batch_size=config.eval_batch_size,
        chunk_size=config.eval_chunk_size,
        train=False,
        eval_head_expansion=config.data.eval_head_expansion,
    )


@dataclass(frozen=True)
class _MicroBatch:
    """The rows of one micro-batch within a packed chunk, and its own packing."""

    rows: torch.Tensor
    batch_sizes: torch.Tensor


def micro_batches(
    batch_sizes: torch.Tensor, micro_size: int, clips: int
) -> list[_MicroBatch | None]:
    """Split a packed chunk of `clips` clips (longest first) into micro-batches of clips.

    Micro-batch m holds clips m*s .. (m+1)*s-1; at time step t its rows are those clips' rows
    among the batch_sizes[t] alive ones. None for a micro-batch whose clips have all ended.
    """
    sizes = [int(n) for n in batch_sizes]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    parts: list[_MicroBatch | None] = []
    for start in range(0, clips, micro_size):
        rows: list[int] = []
        counts: list[int] = []
        for offset, alive in zip(offsets, sizes, strict=True):
            count = min(alive - start, micro_size)
            if count <= 0:
                break
            rows.extend(range(offset + start, offset + start + count))
            counts.append(count)
        parts.append(
            _MicroBatch(torch.tensor(rows), torch.tensor(counts, dtype=torch.int64))
            if rows
            else None
        )
    return parts


def channels_last_inputs(chunk: Chunk) -> Chunk:
    """The chunk's images and face crops in channels-last memory format, as the model's
    convolutions then expect (no copy of the values, only of their layout)."""
    return dataclasses.replace(
        chunk,
        images=chunk.images.contiguous(memory_format=torch.channels_last),
        faces=chunk.faces.contiguous(memory_format=torch.channels_last),
    )
