"""The sweep file and what it decides: settings, search space, trial identity, initial weights.

`config` reads and checks a sweep file (`load_sweep` -> `Sweep`; YAML positions from `_yaml`,
the `report:` section from `_report_config`, the other settings sections from `sections`);
`space` is the search space and how a trial's parameters apply to the base settings;
`identity` hashes a trial's settings; `weights` names the initial weights; `faults` is the
test-only fault injection a trial process runs. Names are imported on first use: a trial
process reads `faults` without loading optuna.
"""

from vtd._lazy import lazy_package

__all__, __getattr__, __dir__ = lazy_package(
    __name__,
    {
        "config": (
            "OPTIMISTIC_NOTE",
            "Sweep",
            "SweepFileError",
            "load_sweep",
            "resolve_sqlite_url",
        ),
        "space": ("SearchSpace", "SearchSpaceError", "apply_params", "get_path"),
        "identity": ("TrialIdentity", "canonical_config", "identify", "portable_path"),
        "weights": ("WEIGHTS_DEMO", "WEIGHTS_FRESH", "InitialWeights"),
        "faults": ("FaultConfig", "InjectedFault", "inject"),
        "_report_config": ("ReportConfig",),
        "sections": ("ObjectiveConfig",),
    },
)
