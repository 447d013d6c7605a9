"""The published evaluation: per-frame metrics and the chunked evaluation loop.

Exports are loaded on first use (see `vtd._lazy`)."""

from typing import TYPE_CHECKING

from vtd._lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        **{
            name: "vtd.evaluate.loop"
            for name in ("EvaluationData", "EvaluationResult", "SplitMetrics", "evaluate")
        },
        **{
            name: "vtd.evaluate.metrics"
            for name in (
                "argmax_points",
                "auc",
                "average_precision",
                "gaze_distance",
                "inout_ap",
                "roc_auc",
                "to_8bit",
            )
        },
    },
)
