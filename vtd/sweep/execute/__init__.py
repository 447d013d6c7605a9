"""Running trials: the session, the workers, and the isolated process each trial runs in.

`session` prepares a study once and runs the workers of `vtd-sweep run`; `pool` runs several
workers on one machine (one per GPU); `worker` is a worker's loop (claim a trial, run it,
report each epoch to Optuna and MLflow, decide pruning); `runner` starts a trial process from
a fork server and watches its memory; `child` is what runs inside that process, and imports
neither optuna nor mlflow; `events` holds the messages the session and the workers send to
whoever shows them.
Names are imported on first use, so that importing `child` loads nothing else of the sweep.
"""

from vtd._lazy import lazy_package

__all__, __getattr__, __dir__ = lazy_package(
    __name__,
    {
        "session": (
            "PreparationError",
            "join_study",
            "prepare",
            "run_prepared",
            "run_sweep",
        ),
        "pool": ("WorkerSpec", "run_local_workers", "worker_specs"),
        "worker": ("run_worker",),
        "runner": ("ProcessOutcome", "TrialLauncher"),
        "child": ("TrainingRequest",),
        "events": ("EpochEnded", "Event", "Notice", "Plan", "TrialEnded", "TrialStarted"),
    },
)
