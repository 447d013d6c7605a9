"""Figures of a study: the grid of per-epoch curves, heatmaps per cell, Optuna's own views.

- `grid.grid_figure`: rows x columns of cells (batch size x chunk size unless the sweep file's
  `report:` says otherwise); in each cell one line per `lines` value (initial weights), the
  mean over repeats with a min-max band; out-of-memory cells hatched and labelled with what
  triggered it, failed cells with the error, cells not run yet saying so: never blank.
  `grid.classify_cells` is what decides how each cell is drawn (and what tests check).
- `heatmap.heatmap_figure`: AUC and distance per cell at each repeat's selected epoch (chosen on
  the objective's split, as in the report's configurations table: test metrics are never
  selected on test unless the objective is), one panel per line, annotated with mean and
  standard deviation over repeats; out-of-memory cells hatched.
- `views.optuna_views`: optimisation history, intermediate values and parameter importances, drawn
  by `optuna.visualization.matplotlib`, where they add to the above (`views.optuna_views_for`).
- `shared`: setting, metric and split names, the grid's layout (`GridLayout`, which the
  heatmaps share), a new figure and `save`.

Our figures are `matplotlib.figure.Figure` objects on an Agg canvas: pyplot's global state
(current figure, backend) is never used, so plots can be made in any process, with or
without a display. Optuna's views go through pyplot and set a style sheet: they are drawn
inside `matplotlib.rc_context` (the style is undone), closed once saved, and only Optuna's
ExperimentalWarning is silenced.
"""
