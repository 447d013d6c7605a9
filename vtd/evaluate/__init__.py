"""The published evaluation: per-frame metrics and the chunked evaluation loop."""

from vtd.evaluate.loop import EvaluationData, EvaluationResult, SplitMetrics, evaluate
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
    "EvaluationData",
    "EvaluationResult",
    "SplitMetrics",
    "evaluate",
    "argmax_points",
    "auc",
    "average_precision",
    "gaze_distance",
    "inout_ap",
    "roc_auc",
    "to_8bit",
]
