"""One fine-tuning run of VTD: the published temporal recipe (see `vtd.train.recipe`).

Exports are loaded on first use (see `vtd._lazy`): `vtd.train.config` does not import torch."""

from typing import TYPE_CHECKING

from vtd._lazy import lazy_exports

if TYPE_CHECKING:
    from vtd.loss import ChunkLoss, chunk_loss
    from vtd.train.config import TrainConfig
    from vtd.train.recipe import FineTuning, finetune
    from vtd.train.records import EpochRecord, StopTraining, TrainResult

__all__ = [
    "ChunkLoss",
    "EpochRecord",
    "FineTuning",
    "StopTraining",
    "TrainConfig",
    "TrainResult",
    "chunk_loss",
    "finetune",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ChunkLoss": "vtd.loss",
        "chunk_loss": "vtd.loss",
        "TrainConfig": "vtd.train.config",
        "FineTuning": "vtd.train.recipe",
        "finetune": "vtd.train.recipe",
        **{name: "vtd.train.records" for name in ("EpochRecord", "StopTraining", "TrainResult")},
    },
)
