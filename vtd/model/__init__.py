"""The VTD network, its ConvLSTM and its checkpoints; nothing about training or data."""

from vtd.model.checkpoint import CheckpointError, LoadReport, load_checkpoint, save_checkpoint
from vtd.model.config import ModelConfig
from vtd.model.convlstm import ConvLSTM, LSTMState
from vtd.model.network import VTD, EncodedFrames

__all__ = [
    "VTD",
    "CheckpointError",
    "ConvLSTM",
    "EncodedFrames",
    "LSTMState",
    "LoadReport",
    "ModelConfig",
    "load_checkpoint",
    "save_checkpoint",
]
