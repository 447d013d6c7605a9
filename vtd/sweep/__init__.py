"""Sweeps: the sweep file, the Optuna study, isolated trial processes, MLflow tracking.

The only package that imports optuna and mlflow. Modules, each with one job:
`config` (the sweep file), `space` (search space), `identity` (trial hashes), `weights`
(initial weights by name), `storage` (Optuna storage settings), `study` (creating, resuming,
queueing), `child` (what runs inside a trial process), `runner` (the trial process seen from
the worker), `tracking` (MLflow), `worker` (the loop a worker runs), `heartbeat` (heartbeats
and recovering the trials of dead workers), `pool` (several workers on one machine, one per
GPU, through joblib), `results` (reading a study back as tables), `report` with `_tables`,
`_published` (published figures beside ours) and `plots`. Submodules are imported
where used, so that a trial process, which imports `vtd.sweep.execute.child`, loads neither optuna
nor mlflow.
"""
