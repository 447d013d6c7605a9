"""One fine-tuning run of VTD: the published temporal recipe."""

from vtd.train.loss import ChunkLoss, chunk_loss

__all__ = ["ChunkLoss", "chunk_loss"]
