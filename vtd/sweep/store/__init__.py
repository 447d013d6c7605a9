"""The shared store of a sweep: the Optuna study and its queue, heartbeats, the MLflow runs.

`storage` opens Optuna's storage (SQLite or a server URL) and holds the file and advisory
locks and the retries of a locked SQLite file; `study` creates and resumes the study and
lets any number of workers claim its trials atomically, `queue` plans what it queues;
`heartbeat` keeps a running trial's heartbeat and fails and re-queues the trials of dead
workers; `tracking` is the MLflow experiment and runs (`Tracker`); `record` is a trial's typed
outcome, `words` how it reads, `outcome` how it is decided. Every worker, on any machine,
meets the others here.
"""

from vtd._lazy import lazy_package

__all__, __getattr__, __dir__ = lazy_package(
    __name__,
    {
        "storage": (
            "StorageBusyError",
            "StorageError",
            "StorageSettings",
            "file_lock",
            "open_storage",
            "storage_lock",
        ),
        "study": (
            "Claim",
            "QueuedTrial",
            "StudyError",
            "SweepStudy",
            "claim_next",
            "delete_study",
            "existing_study",
            "open_sweep_study",
            "study_exists",
        ),
        "queue": ("enqueue", "plan_queue"),
        "heartbeat": ("TrialHeartbeat", "recover_lost_trials"),
        "tracking": ("Tracker",),
    },
)
