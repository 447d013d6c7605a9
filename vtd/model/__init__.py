"""The VTD network, its ConvLSTM and its checkpoints; nothing about training or data.

Exports are loaded on first use (see `vtd._lazy`): `vtd.model.config` is pydantic only, and
a sweep file can be read without importing torch."""

from typing import TYPE_CHECKING

from vtd._lazy import lazy_exports

if TYPE_CHECKING:
    from vtd.model.checkpoint import (
        CheckpointError,
        LoadReport,
        load_checkpoint,
        save_checkpoint,
    )
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CheckpointError": "vtd.model.checkpoint",
        "LoadReport": "vtd.model.checkpoint",
        "load_checkpoint": "vtd.model.checkpoint",
        "save_checkpoint": "vtd.model.checkpoint",
        "ModelConfig": "vtd.model.config",
        "ConvLSTM": "vtd.model.convlstm",
        "LSTMState": "vtd.model.convlstm",
        "VTD": "vtd.model.network",
        "EncodedFrames": "vtd.model.network",
    },
)
