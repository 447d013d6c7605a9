"""`vtd-sweep status`, `report` and `sync`: a study read back, written up, caught up in MLflow."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vtd.sweep.commands.common import write_report


def status(file: Path) -> int:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.console import state_counts, terminal, trials_table
    from vtd.sweep.reporting.trials import trial_rows
    from vtd.sweep.store.heartbeat import recover_lost_trials
    from vtd.sweep.store.study import existing_study

    console = terminal()
    sweep = load_sweep(file)
    sweep_study = existing_study(sweep)
    if sweep_study is None:
        trials = []
    else:
        try:  # trials of dead workers: FAILED and queued again before showing
            recover_lost_trials(sweep_study)
            trials = trial_rows(sweep, sweep_study)
        finally:
            sweep_study.storage.remove_session()
    if not trials:
        console.print(f"study {sweep.study_name}: no trials yet (run `vtd-sweep run {file}`)")
        return 0
    console.print(trials_table(sweep, trials, f"study {sweep.study_name}: {state_counts(trials)}"))
    return 0


def report(file: Path) -> int:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.store.sync import sync_or_say

    console = Console()
    sync_or_say(load_sweep(file), lambda text: console.print(text, markup=False))
    write_report(console, file, None)
    return 0


def sync(file: Path) -> int:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.store.sync import sync_tracking

    summary = sync_tracking(load_sweep(file))
    print(summary.words())
    for number in summary.created:
        print(f"trial {number}: run created")
    for number, count in summary.epochs_logged.items():
        print(f"trial {number}: {count} epoch(s) logged")
    for number in summary.ended:
        print(f"trial {number}: run ended")
    return 0
