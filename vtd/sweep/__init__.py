"""Sweeps: the sweep file, the Optuna study, isolated trial processes, MLflow tracking.

The only package that imports optuna and mlflow. Four sub-packages, one role each:

- `plan`: the sweep file and what it decides (`config`, `_yaml`, `_report_config`, `space`,
  `identity`, `weights`, `faults`);
- `store`: what all workers share (`storage`: Optuna storage and locks; `study`: creating,
  resuming, queueing and claiming; `heartbeat`: heartbeats and recovering the trials of dead
  workers; `tracking`: MLflow);
- `execute`: running trials (`session`: `vtd-sweep run` and `worker`; `pool`: several workers
  on one machine, one per GPU, through joblib; `worker`: the loop a worker runs; `runner`: the
  trial process seen from the worker; `child`: what runs inside it; `events`: the messages
  shown to the user);
- `reporting`: reading a study back (`results`: pandas tables; `_tables`, `plots`, `report`;
  `console`: the terminal).

Sub-packages export their public names lazily (`_lazy`) and modules import each other where
used, so that a trial process, which imports `vtd.sweep.execute.child`, loads neither optuna
nor mlflow. See docs/architecture.md for the interfaces and the path of one trial.
"""
