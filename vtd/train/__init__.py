"""One fine-tuning run of VTD: the published temporal recipe."""

from vtd.loss import ChunkLoss, chunk_loss
from vtd.train.config import TrainConfig

__all__ = ["ChunkLoss", "TrainConfig", "chunk_loss"]
