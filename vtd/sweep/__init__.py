"""Sweeps: the sweep file, the Optuna study, isolated trial processes, MLflow tracking.

The only package that imports optuna and mlflow, in sub-packages by role:
- `plan`: the sweep file and what it decides (`load_sweep` -> `Sweep`, the search space,
  trial identities, initial weights, fault injection, the data checked before any trial);
- `store`: what every worker shares (the Optuna study, its queue and claims, heartbeats, the
  typed trial record and how it reads in words, MLflow tracking and `sync`);
- `execute`: running trials (session, pool of workers, the worker's loop, the trial process
  and its fork server, probes, the events they tell);
- `reporting`: reading a study back (tables, plots, the report, the terminal);
- `commands`: what each `vtd-sweep` command does, called once by `vtd.cli`.
Sub-packages export their names lazily, so that a trial process, which imports
`vtd.sweep.execute.child`, loads neither optuna nor mlflow.
"""
