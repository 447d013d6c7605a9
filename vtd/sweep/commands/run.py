"""`vtd-sweep run` and `vtd-sweep worker`: from the sweep file to the final table and report.

`run`: the worker specs checked, the optimistic note (before and after), `--dry-run` (the
plan, nothing written), the fork server warmed while the study is prepared, `--probe`, the
workers under live progress, the table of trials and the report; exit code 0, 1 (a worker
failed) or 130 (Ctrl-C). `worker`: join the study and run trials until none is left.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vtd.sweep.commands.common import CtrlC, UsageError, write_report


def run(
    file: Path,
    *,
    workers: int | None = None,
    gpus: Sequence[str] | None = None,
    dry_run: bool = False,
    force_new: bool = False,
    probe: bool = False,
    retry_out_of_memory: bool = False,
) -> int:
    from vtd.sweep.execute.events import Notice
    from vtd.sweep.execute.pool import worker_specs
    from vtd.sweep.execute.runner import TrialLauncher
    from vtd.sweep.execute.session import (
        PreparationError,
        plan,
        prepare,
        run_prepared,
    )
    from vtd.sweep.plan.config import OPTIMISTIC_NOTE, load_sweep
    from vtd.sweep.reporting.console import (
        LiveProgress,
        plan_table,
        state_counts,
        terminal,
        trials_table,
    )
    from vtd.sweep.reporting.trials import trial_rows

    console = terminal()
    sweep = load_sweep(file)
    try:
        specs = worker_specs(workers, gpus)
    except ValueError as error:
        raise UsageError(str(error)) from None
    local = len(specs) == 1 and specs[0].gpu is None
    if sweep.file.objective.optimistic:
        console.print(f"[bold yellow]note[/]: {OPTIMISTIC_NOTE}")
    if dry_run:
        study_plan = plan(sweep, retry_out_of_memory=retry_out_of_memory)
        console.print(plan_table(sweep, study_plan))
        console.print(
            f"{len(study_plan.queued)} to queue, {study_plan.waiting} already queued, "
            f"{study_plan.to_sample} still to sample, {study_plan.finished} finished"
        )
        return 0
    with CtrlC(console) as ctrl_c:
        launcher = TrialLauncher()
        if local:
            launcher.warm_up()  # the fork server imports torch while the study is prepared
        try:
            study_plan = prepare(
                sweep,
                force_new=force_new,
                retry_out_of_memory=retry_out_of_memory,
                events=lambda event: (
                    console.print(event.message) if isinstance(event, Notice) else None
                ),
                stop=ctrl_c.stop,
            )
        except PreparationError:
            if ctrl_c.stop.is_set():
                console.print("interrupted while preparing: run the same command again")
                return 130
            raise
        if probe and study_plan.total > 0:
            from vtd.sweep.execute.probe import probe_and_record

            # on the first GPU of --gpus: the cells are probed one at a time
            gpu = gpus[0] if gpus else None
            if probe_and_record(sweep, console, stop=ctrl_c.stop, gpu=gpu):
                study_plan = plan(sweep)  # the pruned trials are no longer to run
        console.print(
            f"study {sweep.study_name}: {study_plan.total} trial(s) to run, "
            f"{study_plan.finished} finished before; MLflow: {sweep.tracking_uri}"
        )
        outcome = None
        if study_plan.total > 0:
            with LiveProgress(console, study_plan.total, sweep.file.objective.metric) as progress:
                outcome = run_prepared(
                    sweep,
                    study_plan,
                    workers=workers,
                    gpus=gpus,
                    events=progress,
                    stop=ctrl_c.stop,
                    launcher=launcher,
                )

    trials = trial_rows(sweep)
    console.print(trials_table(sweep, trials, f"study {sweep.study_name}: {state_counts(trials)}"))
    if sweep.file.objective.optimistic:
        console.print(f"[bold yellow]note[/]: {OPTIMISTIC_NOTE}")
    write_report(console, file, outcome.parent_run_id if outcome is not None else None)
    if outcome is None:
        return 0
    for error in outcome.worker_errors:
        console.print(f"[red]{error}[/]")
    if outcome.interrupted:
        console.print("interrupted: run the same command again to resume")
        return 130
    return 1 if outcome.worker_errors else 0


def worker(
    file: Path,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    threads: int | None = None,
) -> int:
    from vtd.sweep.execute.events import Notice, TrialEnded
    from vtd.sweep.execute.runner import TrialLauncher
    from vtd.sweep.execute.session import join_study
    from vtd.sweep.execute.worker import run_worker
    from vtd.sweep.plan.config import load_sweep, resolve_sqlite_url
    from vtd.sweep.reporting.console import terminal
    from vtd.sweep.store.storage import hide_password

    if threads is not None and threads < 1:
        raise UsageError("--threads must be at least 1")
    console = terminal()
    # A relative sqlite:/// URL on the command line is taken from the current folder.
    sweep = load_sweep(
        file,
        storage=storage and resolve_sqlite_url(storage, Path.cwd()),
        tracking_uri=tracking_uri and resolve_sqlite_url(tracking_uri, Path.cwd()),
    )

    def show(event: object) -> None:
        if isinstance(event, Notice):
            console.print(event.message, markup=False, soft_wrap=True)
        elif isinstance(event, TrialEnded):
            value = "" if event.value is None else f" {event.value:.4f}"
            console.print(
                f"trial {event.number} {event.state.lower()}{value} ({event.cell}, seed "
                f"{event.seed}, {event.seconds:.0f} s) {event.reason}",
                markup=False,
                soft_wrap=True,
            )

    launcher = TrialLauncher()
    launcher.warm_up()  # the fork server imports torch while the study is joined
    with CtrlC(console) as ctrl_c:
        join_study(sweep, launcher=launcher, events=show, stop=ctrl_c.stop)
        console.print(
            f"worker {os.getpid()} joined study {sweep.study_name} "
            f"(storage {hide_password(sweep.storage_url)}, MLflow "
            f"{hide_password(sweep.tracking_uri)})",
            markup=False,
            soft_wrap=True,
        )
        ended = run_worker(
            sweep, events=show, stop=ctrl_c.stop, torch_threads=threads, launcher=launcher
        )
    console.print(f"worker {os.getpid()}: {len(ended)} trial(s) ended here; none left to run")
    if ctrl_c.stop.is_set():
        console.print("interrupted: the running trial is queued again by the next run")
        return 130
    return 0
