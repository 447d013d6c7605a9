"""Reading a sweep back: tables, plots, the report, and the terminal.

`results` reads a study back from Optuna and MLflow as pandas tables; `_tables` keeps one
trial per configuration and seed and computes what plots and report show; `plots` draws the
grid, heatmap and Optuna views; `report` writes the markdown report and publishes it to
MLflow; `console` shows plans, live progress and status tables with rich, and sets up logging.
"""

from vtd._lazy import by_module, lazy_exports

_EXPORTS = by_module(
    __name__,
    {
        "results": ("epochs_frame", "trials_frame"),
        "_tables": ("StudyTables", "load_tables"),
        "plots": ("grid_figure", "heatmap_figure", "optuna_views"),
        "report": ("ReportFiles", "write_report"),
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
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
