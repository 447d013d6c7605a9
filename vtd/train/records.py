"""What a fine-tuning run reports: one record per epoch, handed to `on_epoch`, and the run's
result; `StopTraining` ends a run from `on_epoch`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vtd.evaluate.loop import SplitMetrics
from vtd.model import LoadReport


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised by an `on_epoch` callback to end the run after the current epoch."""


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did: training loss, the evaluation splits' metrics, cost.

    Epoch 0 is the evaluation of the initial weights: no training, so no training loss.
    """

    epoch: int
    train_loss: float | None
    train_l2: float | None
    train_xent: float | None
    validation: SplitMetrics | None
    test: SplitMetrics | None
    seconds: float
    peak_host_mb: float
    peak_device_mb: float
    checkpoint: Path | None = None

    def to_dict(self) -> dict[str, object]:
        record = asdict(self)
        record["checkpoint"] = str(self.checkpoint) if self.checkpoint else None
        return record


@dataclass
class TrainResult:
    records: list[EpochRecord] = field(default_factory=list)  # training epochs, 1..N
    initial: EpochRecord | None = None  # epoch 0: the initial weights, evaluated
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None
    stopped_early: bool = False
    load_report: LoadReport | None = None


OnEpoch = Callable[[EpochRecord], bool | None]


def describe(record: EpochRecord) -> str:
    parts = [] if record.train_loss is None else [f"train loss {record.train_loss:.3f}"]
    for name, split in (("val", record.validation), ("test", record.test)):
        if split is not None:
            parts.append(f"{name} AUC {split.auc:.3f} dist {split.dist:.3f} AP {split.ap:.3f}")
    parts.append(f"{record.seconds:.1f} s")
    return ", ".join(parts)
