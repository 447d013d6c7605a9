"""The names evaluation reports under, defined once for every layer above it (no torch):
the metrics, how they read and which way each is better, the evaluation splits and their
metric prefixes."""

from __future__ import annotations

from typing import Literal

Metric = Literal["auc", "dist", "ap", "loss"]
Direction = Literal["maximize", "minimize"]
# Metrics where a larger value is better; the others (distance, loss) are minimised.
HIGHER_IS_BETTER: dict[str, bool] = {"auc": True, "ap": True, "dist": False, "loss": False}

# How the metrics read in tables, figures and the report.
METRIC_LABELS: dict[str, str] = {"auc": "AUC", "dist": "distance", "ap": "AP"}

# The evaluation splits and the prefix of their metrics' names (val_auc, test_dist ...).
SPLIT_PREFIXES = {"validation": "val", "test": "test"}
SPLIT_NAMES = {prefix: split for split, prefix in SPLIT_PREFIXES.items()}


def direction(metric: str) -> Direction:
    """Which way `metric` is optimised."""
    return "maximize" if HIGHER_IS_BETTER[metric] else "minimize"


def metric_label(metric: str) -> str:
    """How `metric` reads (`METRIC_LABELS`); one without a label by its own name."""
    return METRIC_LABELS.get(metric, metric)
