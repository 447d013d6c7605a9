"""Non-finite numbers: the errors that stop them before they train or score anything.

A NaN or an infinity in a training loss would be applied by the optimiser and spread to every
weight; in a heatmap it would become a metric (a `bincount` error on the CPU, or an AUC of 0.5
on CUDA). Training and evaluation check their numbers and raise one of these instead, with
where it happened, so that a trial ends FAILED with a sentence rather than a wrong result.
"""

from __future__ import annotations

import torch


class NonFiniteError(FloatingPointError):
    """A NaN or an infinity where a number was needed."""


class NonFiniteLoss(NonFiniteError):
    """A training chunk's loss (or its gradients) was not finite; no optimiser step applied it.

    `epoch` and `chunk` are 1-based: the chunk's place among the epoch's training updates.
    """

    def __init__(self, epoch: int, chunk: int, what: str = "loss") -> None:
        super().__init__(f"non-finite {what} at epoch {epoch}, chunk {chunk}")
        self.epoch = epoch
        self.chunk = chunk
        self.what = what

    def __reduce__(self) -> tuple[object, ...]:  # picklable with its fields
        return (type(self), (self.epoch, self.chunk, self.what))


class NonFiniteOutput(NonFiniteError):
    """The model's heatmaps or in/out logits held a NaN or an infinity during evaluation."""


def all_finite(*tensors: torch.Tensor) -> bool:
    """Whether every element of every tensor is finite (one device synchronisation)."""
    checks = [torch.isfinite(tensor).all() for tensor in tensors]
    return bool(torch.stack(checks).all()) if checks else True
