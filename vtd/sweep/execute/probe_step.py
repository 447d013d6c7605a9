"""One probe step inside a trial process (`vtd.sweep.execute.child` runs it): kept apart
from `probe`, which starts those processes, so that the trial's side imports nothing of it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from vtd.train.config import TrainConfig

ProbeKind = Literal["train", "evaluate"]


def probe_step(config: TrainConfig, kind: ProbeKind) -> dict[str, Any]:
    """One training step on the longest training window, or one evaluation step on the
    largest evaluation chunk, of `config` (run in a trial process, see
    `vtd.sweep.execute.child`)."""
    import torch

    from vtd.data.loader import ChunkTask, build_chunk, plan_chunks
    from vtd.data.splits import load_splits
    from vtd.evaluate.loop import autocast
    from vtd.train.chunks import loader_options
    from vtd.train.recipe import FineTuning

    def largest(tasks: list[ChunkTask]) -> ChunkTask:
        return max(tasks, key=lambda task: sum(task.batch_sizes()))

    run = FineTuning(config)
    try:
        started = time.perf_counter()
        if kind == "train":
            # The batch of the longest clips: every clip alive in its first chunk.
            longest = sorted(run.train_clips, key=len, reverse=True)[: config.batch_size]
            task = largest(plan_chunks(longest, loader_options(config, train=True, epoch=1)))
            chunk = build_chunk(longest, task)
            run.step(chunk.to(run.device))
        else:
            splits = load_splits(config.data, config.data_dir)
            clips = list(splits.validation or splits.test or splits.train)
            task = largest(plan_chunks(clips, loader_options(config, train=False)))
            chunk = build_chunk(clips, task).to(run.device)
            run.model.eval()
            with torch.no_grad(), autocast(run.device, config.precision):
                run.model(
                    chunk.images, chunk.head_channels, chunk.faces, batch_sizes=chunk.batch_sizes
                )
        seconds = time.perf_counter() - started
        cuda = run.device.type == "cuda"
        return {
            "kind": kind,
            "frames": sum(task.batch_sizes()),
            "seconds": seconds,
            "peak_device_mb": torch.cuda.max_memory_allocated(run.device) / 2**20 if cuda else 0.0,
        }
    finally:
        run.close()
