"""The published evaluation: per-frame metrics and the chunked evaluation loop."""

from vtd.evaluate.metrics import (
    argmax_points,
    auc,
    average_precision,
    gaze_distance,
    inout_ap,
    roc_auc,
    to_8bit,
)

__all__ = [
    "argmax_points",
    "auc",
    "average_precision",
    "gaze_distance",
    "inout_ap",
    "roc_auc",
    "to_8bit",
]
