"""What `vtd-sweep` shows in the terminal: live progress of trials and epochs, and tables."""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from collections import Counter
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from vtd.sweep.plan.config import Sweep
from vtd.sweep.reporting.trials import outcome_record, selection_text
from vtd.sweep.store.record import Lost
from vtd.sweep.store.words import words

if TYPE_CHECKING:  # session and worker import mlflow: not for `status` and `--dry-run`
    from vtd.sweep.execute.events import Event, Notice, Plan


def configure_logging(verbose: bool) -> None:
    """Our warnings (and INFO with `verbose`) on stderr; the libraries' chatter off."""
    import optuna

    # mlflow sets its loggers' level when imported (from MLFLOW_LOGGING_LEVEL, default
    # INFO). It is imported only by the commands that track (not status, --dry-run): name the
    # level for that import, or set it on the loggers when it already happened.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, show_time=False)],
        force=True,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    for name in ("alembic", "sqlalchemy", *(("mlflow",) if "mlflow" in sys.modules else ())):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


STATE_STYLES = {
    "COMPLETE": "green",
    "PRUNED": "yellow",
    "FAIL": "red",
    "RUNNING": "cyan",
    "WAITING": "dim",
}


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


class LiveProgress:
    """An event sink that draws a bar for the study and one per running trial."""

    def __init__(self, console: Console, total: int, metric: str) -> None:
        self.console = console
        self.metric = metric
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.trials_task = self.progress.add_task("trials", total=max(total, 1))
        self.running: dict[int, TaskID] = {}

    def __enter__(self) -> LiveProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def __call__(self, event: Event | Notice) -> None:
        from vtd.sweep.execute.events import EpochEnded, Notice, TrialEnded, TrialStarted

        if isinstance(event, Notice):
            self.progress.console.print(event.message)
        elif isinstance(event, TrialStarted):
            self.running[event.number] = self.progress.add_task(
                f"  trial {event.number}: {event.cell} seed {event.seed}", total=event.epochs
            )
        elif isinstance(event, EpochEnded):
            task = self.running.get(event.number)
            if task is not None:
                self.progress.update(task, completed=event.epoch)
        elif isinstance(event, TrialEnded):
            task = self.running.pop(event.number, None)
            if task is not None:
                self.progress.remove_task(task)
            self.progress.advance(self.trials_task)
            style = STATE_STYLES.get(event.state, "")
            value = f" {self.metric} {_number(event.value)}" if event.value is not None else ""
            reason = f" ({event.reason})" if event.reason and event.state != "COMPLETE" else ""
            self.progress.console.print(
                f"trial {event.number} [{style}]{event.state}[/]{value}: {event.cell} "
                f"seed {event.seed}, {event.seconds:.0f} s{reason}",
                highlight=False,
            )


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def plan_table(sweep: Sweep, plan: Plan) -> Table:
    table = Table(title=f"{sweep.study_name}: trials to queue", title_justify="left")
    for column in (*sweep.space.names, "seed", "origin", "config hash"):
        table.add_column(column)
    for item in plan.queued:
        table.add_row(
            *(str(item.resolved.params.get(name)) for name in sweep.space.names),
            str(item.resolved.seed),
            item.origin
            + (f" of trial {', '.join(map(str, item.retry_of))}" if item.retry_of else ""),
            item.resolved.identity.config_hash,
        )
    return table


def terminal(stderr: bool = False) -> Console:
    """A console as wide as the terminal, or 160 columns when writing to a file or pipe."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=160)
    return console


def trials_table(sweep: Sweep, trials: list[dict[str, Any]], title: str) -> Table:
    """One row per trial: state, settings, seed, value, best AUC / distance, reason."""
    split = "val" if sweep.file.objective.split == "validation" else "test"
    objective = sweep.file.objective
    # The report's definition (`reporting.trials.selection_text`), stated under the table.
    table = Table(
        title=title,
        title_justify="left",
        caption=f"value: {objective.reduce} {objective.split} {objective.metric}; "
        f"{split} AUC / dist: at each trial's selected epoch, "
        f"{selection_text(sweep, objective.reduce)}",
        caption_justify="left",
    )
    headers = ("#", "state", *sweep.space.names, "seed", "value", f"{split} AUC", f"{split} dist")
    for header in headers:
        table.add_column(
            header,
            no_wrap=True,
            min_width=max(len(header), 8 if header == "state" else 2),
            justify="left" if header == "state" else "right",
        )
    table.add_column("reason", overflow="fold", ratio=1)
    for row in trials:
        style = STATE_STYLES.get(row["state"], "")
        table.add_row(
            str(row["number"]),
            f"[{style}]{row['state']}[/]",
            *(str(row.get(name)) for name in sweep.space.names),
            _number(row.get("seed")),
            _number(row.get("value")),
            _number(row.get(f"selected_{split}_auc")),
            _number(row.get(f"selected_{split}_dist")),
            _reason(row),
        )
    return table


def _reason(row: dict[str, Any]) -> str:
    """A trial's outcome in words (`vtd.sweep.store.record`); a trial failed as lost by the
    heartbeat sweep, its reason as that sweep wrote it (how long it was silent)."""
    outcome = outcome_record(row)
    if outcome is None or isinstance(outcome, Lost):
        return _text(row.get("reason"))
    return words(outcome)


def state_counts(trials: list[dict[str, Any]]) -> str:
    """How many trials are in each state, the commonest first."""
    if not trials:
        return "no trials"
    counts = Counter(row["state"] for row in trials)
    return ", ".join(f"{count} {state}" for state, count in counts.most_common())
