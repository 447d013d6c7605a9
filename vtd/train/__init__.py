"""One fine-tuning run of VTD: the published temporal recipe (see `vtd.train.recipe`)."""

from vtd.loss import ChunkLoss, chunk_loss
from vtd.train.config import TrainConfig
from vtd.train.recipe import EpochRecord, FineTuning, StopTraining, TrainResult, finetune

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
