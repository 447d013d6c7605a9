"""Optuna's own views (history, intermediate values, importances), where they add to ours.

They go through pyplot and set a style sheet: they are drawn inside `matplotlib.rc_context`
(the style is undone), closed once saved, and only Optuna's ExperimentalWarning is silenced.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.ticker import MaxNLocator

from vtd.evaluate.names import metric_label
from vtd.sweep.reporting._tables import StudyTables
from vtd.sweep.reporting.plots.shared import save

logger = logging.getLogger(__name__)

OPTUNA_VIEWS = ("history", "intermediate", "importance")
# Parameter importances mean little with fewer complete trials than this.
MIN_TRIALS_FOR_IMPORTANCE = 10


def optuna_views_for(tables: StudyTables) -> tuple[str, ...]:
    """The Optuna views that add to the grid and heatmaps for this study.

    - history (the objective per trial and the best so far) and importance (which setting
      matters) for tpe / random studies, where trials are chosen by the sampler; importance
      needs two or more searched settings and `MIN_TRIALS_FOR_IMPORTANCE` complete trials;
    - intermediate values (the objective per epoch of every trial) when a pruner stops trials
      or the sampler is not a grid (a grid's curves are in the grid figure already).
    """
    sweep = tables.sweep
    sampled = sweep.file.sampler.name != "grid"
    complete = int((tables.trials["outcome"] == "complete").sum()) if len(tables.trials) else 0
    views = []
    if sampled and complete >= 2:
        views.append("history")
    if (sampled or sweep.file.pruner.name != "none") and complete + len(tables.epochs) > 0:
        views.append("intermediate")
    if sampled and len(sweep.space.names) >= 2 and complete >= MIN_TRIALS_FOR_IMPORTANCE:
        views.append("importance")
    return tuple(views)


def _optuna_drawers(study: Any, target_name: str) -> dict[str, Callable[[], Any]]:
    from optuna.visualization import matplotlib as views

    return {
        "history": lambda: views.plot_optimization_history(study, target_name=target_name),
        "intermediate": lambda: views.plot_intermediate_values(study),
        "importance": lambda: views.plot_param_importances(study, target_name=target_name),
    }


def optuna_views(
    tables: StudyTables, study: Any, folder: Path, which: Iterable[str]
) -> dict[str, Path]:
    """Draw Optuna's views `which` (those of `OPTUNA_VIEWS` that `optuna_views_for` picks)
    as PNGs under `folder`."""
    import optuna
    from matplotlib import pyplot

    objective = tables.sweep.file.objective
    target = f"{objective.reduce} {objective.split} {metric_label(objective.metric)}"
    drawers = _optuna_drawers(study, target)
    written = {}
    for view in which:
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                axes = drawers[view]()
            except (ValueError, RuntimeError) as error:
                # Optuna refuses some studies (e.g. importances of one distinct value).
                logger.warning("optuna %s view not drawn: %s", view, error)
                continue
            figure = axes.figure
            try:
                figure.set_size_inches(7.5, 4.5)
                figure.suptitle(f"study {tables.sweep.study_name}", x=0.99, ha="right")
                if view == "intermediate":
                    axes.set_xlabel("epoch")
                    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
                    axes.set_ylabel(f"{objective.split} {metric_label(objective.metric)}")
                written[view] = save(figure, folder / f"optuna_{view}.png", tight=True)
            finally:
                pyplot.close(figure)
    return written
