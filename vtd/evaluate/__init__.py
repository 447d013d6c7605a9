"""The published evaluation: per-frame metrics and the chunked evaluation loop.

Exports are loaded on first use (see `vtd._lazy`)."""

from vtd._lazy import lazy_package

__all__, __getattr__, __dir__ = lazy_package(
    __name__,
    {
        "loop": ("EvaluationData", "EvaluationResult", "SplitMetrics", "evaluate"),
        "metrics": (
            "argmax_points",
            "auc",
            "average_precision",
            "gaze_distance",
            "inout_ap",
            "roc_auc",
            "to_8bit",
        ),
    },
)
