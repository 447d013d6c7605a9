"""`vtd-sweep`: the command line. Thin: parses, then calls `vtd.sweep` and `vtd.data`.

    vtd-sweep run FILE [--workers N] [--gpus 0,1,...] [--dry-run] [--force-new] [--probe]
    vtd-sweep worker FILE [--storage URL] [--tracking-uri URL] [--threads N]
    vtd-sweep status FILE
    vtd-sweep probe FILE
    vtd-sweep report FILE
    vtd-sweep ui FILE [--port PORT]
    vtd-sweep eval --weights FILE_OR_FOLDER (--data FOLDER ... | --sweep FILE) [...]
    vtd-sweep prepare SOURCE OUTPUT --target NAME | --targets CSV [...]
    vtd-sweep data FILE [--csv]

A bad sweep file, a data error (or bad input to `prepare`) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    pass

USAGE_ERROR = 2


class _CtrlC:
    """First Ctrl-C: stop cleanly (the running trial is marked interrupted); second: abort."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.stop = threading.Event()
        self._previous: Callable | int | None = None

    def __enter__(self) -> _CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous or signal.SIG_DFL)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        self.console.print(
            "[bold]stopping[/]: the running trial is marked interrupted and runs again next "
            "time (Ctrl-C again to abort at once)"
        )


def _run(args: argparse.Namespace) -> int:
    from vtd.sweep.execute.events import Notice
    from vtd.sweep.execute.pool import worker_specs
    from vtd.sweep.execute.runner import TrialLauncher
    from vtd.sweep.execute.session import (
        PreparationError,
        plan,
        prepare,
        run_sweep,
    )
    from vtd.sweep.plan.config import OPTIMISTIC_NOTE, load_sweep
    from vtd.sweep.reporting.console import (
        LiveProgress,
        plan_table,
        state_counts,
        terminal,
        trials_table,
    )
    from vtd.sweep.reporting.results import trials_frame

    console = terminal()
    sweep = load_sweep(args.file)
    try:
        specs = worker_specs(args.workers, args.gpus)
    except ValueError as error:
        raise _UsageError(str(error)) from None
    local = len(specs) == 1 and specs[0].gpu is None
    if sweep.file.objective.optimistic:
        console.print(f"[bold yellow]note[/]: {OPTIMISTIC_NOTE}")
    retry_out_of_memory = args.retry == "out-of-memory"
    if args.dry_run:
        study_plan = plan(sweep, retry_out_of_memory=retry_out_of_memory)
        console.print(plan_table(sweep, study_plan))
        console.print(
            f"{len(study_plan.queued)} to queue, {study_plan.waiting} already queued, "
            f"{study_plan.to_sample} still to sample, {study_plan.finished} finished"
        )
        return 0
    with _CtrlC(console) as ctrl_c:
        if local:
            TrialLauncher().warm_up()  # the fork server imports torch while the study is prepared
        try:
            study_plan = prepare(
                sweep,
                force_new=args.force_new,
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
        if args.probe and study_plan.total > 0:
            from vtd.sweep.execute.probe import probe_and_record

            if probe_and_record(sweep, console, stop=ctrl_c.stop):
                study_plan = plan(sweep)  # the pruned trials are no longer to run
        console.print(
            f"study {sweep.study_name}: {study_plan.total} trial(s) to run, "
            f"{study_plan.finished} finished before; MLflow: {sweep.tracking_uri}"
        )
        outcome = None
        if study_plan.total > 0:
            with LiveProgress(console, study_plan.total, sweep.file.objective.metric) as progress:
                outcome = run_sweep(
                    sweep,
                    workers=args.workers,
                    gpus=args.gpus,
                    events=progress,
                    stop=ctrl_c.stop,
                    prepared=study_plan,
                )

    trials = trials_frame(sweep)
    console.print(trials_table(sweep, trials, f"study {sweep.study_name}: {state_counts(trials)}"))
    if sweep.file.objective.optimistic:
        console.print(f"[bold yellow]note[/]: {OPTIMISTIC_NOTE}")
    _write_report(console, args.file, outcome.parent_run_id if outcome is not None else None)
    if outcome is None:
        return 0
    for error in outcome.worker_errors:
        console.print(f"[red]{error}[/]")
    if outcome.interrupted:
        console.print("interrupted: run the same command again to resume")
        return 130
    return 1 if outcome.worker_errors else 0


def _write_report(console: Console, file: Path, parent_run_id: str | None) -> None:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.report.write import write_report

    files = write_report(load_sweep(file), parent_run_id=parent_run_id)
    console.print(
        f"report: {files.report} ({len(files.plots)} plots; MLflow run {files.run_id})",
        soft_wrap=True,
        markup=False,
    )


def _probe(args: argparse.Namespace) -> int:
    from vtd.sweep.execute.probe import probe_and_show
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.console import terminal

    console = terminal()
    with _CtrlC(console) as ctrl_c:
        probe_and_show(load_sweep(args.file), console, stop=ctrl_c.stop)
    return 130 if ctrl_c.stop.is_set() else 0


def _report(args: argparse.Namespace) -> int:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.store.sync import sync_or_say

    console = Console()
    sync_or_say(load_sweep(args.file), lambda text: console.print(text, markup=False))
    _write_report(console, args.file, None)
    return 0


def _sync(args: argparse.Namespace) -> int:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.store.sync import sync_tracking

    summary = sync_tracking(load_sweep(args.file))
    print(summary.words())
    for number in summary.created:
        print(f"trial {number}: run created")
    for number, count in summary.epochs_logged.items():
        print(f"trial {number}: {count} epoch(s) logged")
    for number in summary.ended:
        print(f"trial {number}: run ended")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from vtd.sweep.execute.events import Notice
    from vtd.sweep.execute.runner import TrialLauncher
    from vtd.sweep.execute.session import join_study
    from vtd.sweep.execute.worker import TrialEnded, run_worker
    from vtd.sweep.plan.config import load_sweep, resolve_sqlite_url
    from vtd.sweep.reporting.console import terminal
    from vtd.sweep.store.storage import hide_password

    if args.threads is not None and args.threads < 1:
        raise _UsageError("--threads must be at least 1")
    console = terminal()
    # A relative sqlite:/// URL on the command line is taken from the current folder.
    sweep = load_sweep(
        args.file,
        storage=args.storage and resolve_sqlite_url(args.storage, Path.cwd()),
        tracking_uri=args.tracking_uri and resolve_sqlite_url(args.tracking_uri, Path.cwd()),
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
    with _CtrlC(console) as ctrl_c:
        join_study(sweep, launcher=launcher, events=show, stop=ctrl_c.stop)
        console.print(
            f"worker {os.getpid()} joined study {sweep.study_name} "
            f"(storage {hide_password(sweep.storage_url)}, MLflow "
            f"{hide_password(sweep.tracking_uri)})",
            markup=False,
            soft_wrap=True,
        )
        ended = run_worker(
            sweep, events=show, stop=ctrl_c.stop, torch_threads=args.threads, launcher=launcher
        )
    console.print(f"worker {os.getpid()}: {len(ended)} trial(s) ended here; none left to run")
    if ctrl_c.stop.is_set():
        console.print("interrupted: the running trial is queued again by the next run")
        return 130
    return 0


def _status(args: argparse.Namespace) -> int:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.console import state_counts, terminal, trials_table
    from vtd.sweep.reporting.results import trials_frame
    from vtd.sweep.store.heartbeat import recover_lost_trials
    from vtd.sweep.store.study import open_sweep_study, study_exists

    console = terminal()
    sweep = load_sweep(args.file)
    if study_exists(sweep):  # trials of dead workers: FAILED and queued again before showing
        sweep_study = open_sweep_study(sweep, create=False)
        recover_lost_trials(sweep_study)
        sweep_study.storage.remove_session()
    trials = trials_frame(sweep)
    if trials.empty:
        console.print(f"study {sweep.study_name}: no trials yet (run `vtd-sweep run {args.file}`)")
        return 0
    console.print(trials_table(sweep, trials, f"study {sweep.study_name}: {state_counts(trials)}"))
    return 0


def _ui(args: argparse.Namespace) -> int:
    from mlflow import MlflowClient

    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.store.storage import sqlite_busy_timeout_uri, sqlite_file
    from vtd.sweep.store.tracking import trials_view_url

    sweep = load_sweep(args.file)
    console = Console()
    server = not sweep.tracking_uri.startswith("sqlite:")
    address = sweep.tracking_uri if server else f"http://{args.host}:{args.port}"
    experiment = None
    store = sqlite_file(sweep.tracking_uri)
    if server or (store is not None and store.is_file()):
        experiment = MlflowClient(sweep.tracking_uri).get_experiment_by_name(sweep.study_name)
    trials = (
        f"; its trials: {trials_view_url(address, experiment.experiment_id)}"
        if experiment is not None
        else ""
    )
    if server:
        console.print(
            f"study {sweep.study_name} is tracked by the server at {address}{trials}",
            soft_wrap=True,
        )
        return 0
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[bold yellow]warning[/]: the MLflow UI has no login; on {args.host} anyone who "
            "can reach this machine reads and changes the study's runs. Prefer 127.0.0.1 and an "
            f"SSH tunnel (ssh -L {args.port}:127.0.0.1:{args.port} this-host), or a reverse "
            "proxy with authentication."
        )
    console.print(
        f"MLflow UI for study {sweep.study_name} at [bold]{address}[/] "
        f"(store {sweep.tracking_uri}){trials}; Ctrl-C to stop",
        soft_wrap=True,
    )
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        sqlite_busy_timeout_uri(sweep.tracking_uri, 60),
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return _serve(command, env)


class _Signalled(Exception):  # noqa: N818 - a signal, not an error
    pass


def _raise_signalled(signum: int, _frame: FrameType | None) -> None:
    raise _Signalled(signum)


def _serve(command: list[str], env: dict[str, str], grace_s: float = 10.0) -> int:
    """Run a server until it ends or this process gets Ctrl-C, SIGTERM or SIGHUP; then stop
    it and every process it started (its own session, so the whole group), never leaving it
    listening. The server's exit code, or 0 when we stopped it."""
    ending = (signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.signal(number, _raise_signalled) for number in ending}
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return server.wait()
    except (KeyboardInterrupt, _Signalled):
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if server.poll() is None:
            # SIGTERM first (uvicorn / gunicorn shut down cleanly), SIGKILL if it lingers
            for stop_signal in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, stop_signal)
                try:
                    server.wait(grace_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ProcessLookupError):  # its workers, if any outlived it
            os.killpg(server.pid, signal.SIGKILL)


def _evaluation_clips(args: argparse.Namespace) -> list:
    from vtd.data import SourceSpec, SplitSpec, build_index, load_splits
    from vtd.data.splits import select_clips

    if args.sweep is not None:
        from vtd.sweep.plan.config import load_sweep

        sweep = load_sweep(args.sweep)
        if sweep.file.demo is not None:
            from vtd.demo.generate import ensure_demo

            ensure_demo(sweep.cache_dir, sweep.file.demo)
        splits = load_splits(sweep.base.data, sweep.base.data_dir)
        clips = getattr(splits, args.split)
        if not clips:
            raise _UsageError(f"{args.sweep}: the sweep's data has no {args.split} clips")
        return clips
    sources = [SourceSpec(root=path) for path in args.data]
    clips = build_index(sources, Path.cwd())
    return select_clips(clips, SplitSpec(subsets=(args.subset,)), "--subset")


def _eval(args: argparse.Namespace) -> int:
    from vtd.data import DataError
    from vtd.evaluate.checkpoints import evaluate_checkpoints
    from vtd.model import CheckpointError, ModelConfig
    from vtd.sweep.reporting.console import terminal

    if (args.sweep is None) == (not args.data):
        raise _UsageError("give the data to evaluate on: --data FOLDER ... or --sweep FILE")
    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        clips = _evaluation_clips(args)
        rows = evaluate_checkpoints(
            args.weights,
            clips,
            model=ModelConfig(variant=args.model) if args.model else None,
            batch_size=args.batch_size,
            chunk_size=args.chunk_size,
            device=device,
        )
    except (DataError, CheckpointError, FileNotFoundError) as error:
        raise _UsageError(str(error)) from None
    console = terminal()
    table = Table(title=f"{args.weights}: {len(clips)} clips", title_justify="left")
    for column in rows.columns:
        table.add_column(str(column), justify="left" if column == "checkpoint" else "right")
    for row in rows.itertuples(index=False):
        table.add_row(
            *(f"{value:.4f}" if isinstance(value, float) else str(value) for value in row)
        )
    console.print(table)
    if args.csv is not None:
        rows.to_csv(args.csv, index=False)
        console.print(f"written to {args.csv}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from vtd.data.errors import DataError
    from vtd.prepare.convert import prepare
    from vtd.prepare.options import PrepareOptions

    try:
        given = {
            "target": args.target,
            "targets": args.targets,
            "person": args.person,
            "keypoints": args.keypoints,
            "test_participants": args.test_participants,
        }
        # Only the flags given: the lab layout rejects --target, --person, ... when present.
        options = PrepareOptions(
            layout=args.layout,
            head_source=args.head_source,
            head_box=args.head_box,
            split=args.split,
            every=args.every,
            link=args.link,
            force=args.force,
            skip_bad_frames=args.skip_bad_frames,
            **{name: value for name, value in given.items() if value is not None},
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise _UsageError(f"{where + ': ' if where else ''}{first['msg']}") from None
    try:
        report = prepare(args.source, args.output, options)
    except DataError as error:
        raise _UsageError(str(error)) from None
    Console().print(
        f"wrote {len(report.clips)} clip(s), {report.frames_written} frame(s) to {args.output}"
        + (f"; skipped {len(report.skipped)} bad frame(s)" if report.skipped else "")
    )
    return 0


def _data(args: argparse.Namespace) -> int:
    import pandas as pd

    from vtd.data.errors import DataError
    from vtd.data.summary import summarize
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.plan.datacheck import check_sweep_data

    sweep = load_sweep(args.file)
    try:
        checked = check_sweep_data(sweep)
        parts = []
        for item in checked:
            rows = summarize(item.index, item.splits, item.variant.config.group_by)
            if len(checked) > 1:
                rows.insert(0, "variant", item.variant.label)
            parts.append(rows)
    except DataError as error:
        raise _UsageError(f"data: {error}") from None
    table = pd.concat(parts, ignore_index=True)
    if args.csv:
        sys.stdout.write(table.to_csv(index=False))
        return 0
    console = Console()
    # One table per data variant, one column per (split, source): rows are the quantities.
    for item, rows in zip(checked, parts, strict=True):
        title = f"{args.file}" + (f" ({item.variant.label})" if item.variant.label else "")
        shown = Table(title=title, title_justify="left")
        shown.add_column("")
        for split, source in zip(rows["split"], rows["source"], strict=True):
            shown.add_column(f"{split}\n{source}")
        for column in rows.columns:
            if column in ("variant", "split", "source"):
                continue
            values = rows[column]
            cells = [f"{value:.1%}" for value in values] if column == "in_frame" else values
            shown.add_row(column.replace("_", " "), *(str(value) for value in cells))
        console.print(shown)
    skipped = list({id(item.index): item.index for item in checked}.values())
    for index in skipped:
        for frame in index.skipped[:_SKIPPED_SHOWN]:
            where = f"{frame.annotation_file}:{frame.line}" if frame.line else frame.annotation_file
            console.print(f"skipped {where}: {frame.reason}", markup=False, soft_wrap=True)
        if len(index.skipped) > _SKIPPED_SHOWN:
            console.print(f"... and {len(index.skipped) - _SKIPPED_SHOWN} more skipped frames")
    return 0


_SKIPPED_SHOWN = 10


class _UsageError(Exception):
    """Bad input from the command line: one line, exit code 2."""


def _gpu_list(text: str) -> list[str]:
    gpus = [part.strip() for part in text.split(",")]
    if not all(gpus):
        raise argparse.ArgumentTypeError(f"expected GPU ids separated by commas, got {text!r}")
    return gpus


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vtd-sweep",
        description="Fine-tune VTD and sweep its hyperparameters (Optuna study, MLflow runs).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="create or resume the study and run its trials")
    run.add_argument("file", type=Path, help="the sweep file (YAML)")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes on this machine (default: one per GPU of --gpus, else one)",
    )
    run.add_argument(
        "--gpus",
        type=_gpu_list,
        default=None,
        help="GPUs to use, e.g. 0,1,2,3: one worker process per GPU, pinned with "
        "CUDA_VISIBLE_DEVICES",
    )
    run.add_argument("--dry-run", action="store_true", help="list the trials it would run")
    run.add_argument(
        "--force-new",
        action="store_true",
        help="delete the study of this name and start it anew (its folder and MLflow "
        "experiment are kept under a new name)",
    )
    run.add_argument(
        "--probe",
        action="store_true",
        help="first probe every cell (one training and one evaluation step each) and record "
        "those that run out of memory as PRUNED, before any full trial starts",
    )
    run.add_argument(
        "--retry",
        choices=("out-of-memory",),
        help="out-of-memory: run the out-of-memory trials and the cells they dominated again "
        "(done without asking on other hardware or with a larger memory_cap_mb)",
    )
    run.set_defaults(handler=_run)

    probe = commands.add_parser(
        "probe",
        help="which grid cells fit in memory: one training and one evaluation step per cell, "
        "each in a trial process, largest batch x chunk first",
    )
    probe.add_argument("file", type=Path, help="the sweep file (YAML)")
    probe.set_defaults(handler=_probe)

    sync = commands.add_parser(
        "sync",
        help="bring MLflow up to date from Optuna and the trial folders (one run per trial, "
        "every epoch, the right status); `run` and `report` do it first",
    )
    sync.add_argument("file", type=Path, help="the sweep file (YAML)")
    sync.set_defaults(handler=_sync)

    worker = commands.add_parser(
        "worker",
        help="join the study (made by `run`, or made now) and run its trials until none is "
        "left; start any number, on any number of machines",
    )
    worker.add_argument("file", type=Path, help="the sweep file (YAML)")
    worker.add_argument("--storage", help="Optuna storage URL (default: the file's)")
    worker.add_argument("--tracking-uri", help="MLflow tracking URI (default: the file's)")
    worker.add_argument(
        "--threads", type=int, help="torch threads per trial (default: torch's choice)"
    )
    worker.set_defaults(handler=_worker)

    status = commands.add_parser("status", help="a table of the study's trials")
    status.add_argument("file", type=Path)
    status.set_defaults(handler=_status)

    report = commands.add_parser(
        "report", help="write studies/<study>/report.md and its plots; log them to MLflow"
    )
    report.add_argument("file", type=Path)
    report.set_defaults(handler=_report)

    ui = commands.add_parser("ui", help="the MLflow UI for the study's tracking store")
    ui.add_argument("file", type=Path)
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=_ui)

    evaluation = commands.add_parser(
        "eval", help="evaluate a checkpoint, or every checkpoint of a folder, with the metrics"
    )
    evaluation.add_argument("--weights", type=Path, required=True, help="a .pt file or a folder")
    evaluation.add_argument("--data", type=Path, nargs="+", help="data set folders to index")
    evaluation.add_argument("--subset", default="test", help="with --data: annotation subfolder")
    evaluation.add_argument("--sweep", type=Path, help="evaluate on this sweep file's data")
    evaluation.add_argument(
        "--split", choices=("train", "validation", "test"), default="test", help="with --sweep"
    )
    evaluation.add_argument(
        "--model", choices=("full", "small"), help="default: from the checkpoint's sidecar"
    )
    evaluation.add_argument("--batch-size", type=int, default=4)
    evaluation.add_argument("--chunk-size", type=int, default=3)
    evaluation.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    evaluation.add_argument("--csv", type=Path, help="also write the table as CSV")
    evaluation.set_defaults(handler=_eval)

    prep = commands.add_parser(
        "prepare", help="labelImg XML / OpenPose JSON folders to ObjectAttention annotations"
    )
    prep.add_argument(
        "source",
        type=Path,
        help="settings layout: <source>/<session>/<setting>/ frames + XML; lab layout: "
        "<source>/<participant>/<session>/<setting>/<object>/{rgb...,json...}/ + XML",
    )
    prep.add_argument("output", type=Path, help="the data set folder to write")
    prep.add_argument(
        "--layout",
        choices=("settings", "lab"),
        default="settings",
        help="lab: the lab's raw recordings, gaze target = object folder name, written as the "
        "lab's files (header with spaces, ', ' between fields)",
    )
    prep.add_argument("--head-source", choices=("voc", "openpose"), default="voc")
    prep.add_argument(
        "--head-box",
        choices=("lab", "centred"),
        default="lab",
        help="OpenPose head box rule: the lab's get_openpose_bbox (default) or centred",
    )
    prep.add_argument("--target", help="the target object's name in every folder")
    prep.add_argument("--targets", type=Path, help="CSV session,setting,target per folder")
    prep.add_argument("--split", default="train", help="annotation subfolder (train, test)")
    prep.add_argument(
        "--test-participants",
        type=lambda text: tuple(name.strip() for name in text.split(",") if name.strip()),
        help="lab layout: participants (comma separated) written to annotations/test; the "
        "others go to --split",
    )
    prep.add_argument("--person", help="annotation file name (default: person)")
    prep.add_argument("--every", type=int, default=1, help="keep every N-th frame")
    prep.add_argument("--link", choices=("copy", "hardlink", "symlink"), default="copy")
    prep.add_argument("--force", action="store_true", help="overwrite existing output files")
    prep.add_argument("--skip-bad-frames", action="store_true")
    prep.add_argument("--keypoints", type=Path, help="OpenPose JSON folder (openpose source)")
    prep.set_defaults(handler=_prepare)

    data = commands.add_parser(
        "data",
        help="what the sweep's data is, per split and source (clips, frames, image sizes, "
        "formats, skipped frames, groups), before any trial",
    )
    data.add_argument("file", type=Path, help="the sweep file (YAML)")
    data.add_argument("--csv", action="store_true", help="print the rows as CSV")
    data.set_defaults(handler=_data)
    return parser


def _is_mlflow_error(error: Exception) -> bool:
    """An MlflowException, without importing mlflow (a second of the quick answers: `status`,
    `--dry-run`) when nothing did: then the error cannot be one."""
    mlflow_exceptions = sys.modules.get("mlflow.exceptions")
    return mlflow_exceptions is not None and isinstance(error, mlflow_exceptions.MlflowException)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from vtd.sweep.reporting.console import configure_logging

    configure_logging(args.verbose)
    from vtd.sweep.execute.session import PreparationError
    from vtd.sweep.plan.config import SweepFileError
    from vtd.sweep.store.storage import StorageError
    from vtd.sweep.store.study import StudyError

    try:
        return int(args.handler(args))
    except (SweepFileError, StudyError, PreparationError, StorageError, _UsageError) as error:
        print(f"vtd-sweep: {error}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as error:
        if not _is_mlflow_error(error):
            raise
        # an unreachable tracking server, mostly
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        print(f"vtd-sweep: MLflow: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vtd-sweep: aborted (the running trial is marked interrupted)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
