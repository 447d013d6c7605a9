"""`studies/<study>/report.md`, its plots and tables; logged to the study's MLflow parent run.

`write.write_report(sweep)` is run at the end of `vtd-sweep run` and by `vtd-sweep report FILE`.
It writes, under `studies/<study>/`:

- `report.md`: the study's settings; one row per configuration (its settings, training data,
  repeats, selected epochs, validation and test AUC and distance at the selected epoch as
  mean ± std over repeats, state); the table of initial weights x training data (final-epoch
  test AUC / distance); which pairs of configurations are not distinguishable at these
  repeats (the rule is stated in the report); the trials that ran out of memory or failed;
  the plots, linked relatively so that the folder can be moved or read in MLflow;
- `plots/*.png` (see `vtd.sweep.reporting.plots`);
- `configurations.csv`, `weights_by_data.csv`, `pairs.csv`: the tables at full precision;
  `published.csv` and a "published (lab) vs this study" section when the sweep file names
  published figures (`report.published`, see `vtd.sweep.reporting._published`).

MLflow: the files go to the artifacts of a parent run, under `report/`: at the end of
`vtd-sweep run`, that run's parent run; from `vtd-sweep report`, the study's latest parent
run (the latest `vtd-sweep run`), whose `report/` files are overwritten, so the latest run holds
the latest report; a study without one gets a run named "report" (tag vtd.command=report).

What is computed (`compute`: the configurations, weights x data and pairs tables), how it
is written (`markdown`: report.md's text; `write`: the plots, CSV files and report.md, named in
`files`) and where it is published (`publish`: MLflow) are apart.
"""
