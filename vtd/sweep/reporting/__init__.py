"""Reading a sweep back: tables, plots, the report, and the terminal.

`trials` reads a study's trials back from Optuna as plain rows (what `status` shows, without
pandas); `results` reads them and MLflow's epochs as pandas tables; `_tables` keeps one
trial per configuration and seed and computes what plots and report show; `plots/` draws the
grid (`grid`), the heatmaps (`heatmap`) and Optuna's views (`views`) on `shared` names and
layout; `report/` computes the report's tables (`compute`), writes report.md (`markdown`) and
the files (`write`, named in `files`), and publishes them to MLflow (`publish`); `console`
shows plans, live progress and status tables with rich, and sets up logging.
"""

from vtd._lazy import lazy_package

__all__, __getattr__, __dir__ = lazy_package(
    __name__,
    {
        "trials": ("trial_rows",),
        "results": ("epochs_frame", "trials_frame"),
        "_tables": ("StudyTables", "load_tables"),
        "plots.grid": ("grid_figure",),
        "plots.heatmap": ("heatmap_figure",),
        "plots.views": ("optuna_views",),
        "report.files": ("ReportFiles",),
        "report.write": ("write_report",),
        "console": (
            "LiveProgress",
            "configure_logging",
            "plan_table",
            "state_counts",
            "terminal",
            "trials_table",
        ),
    },
)
