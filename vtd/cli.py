"""`vtd-sweep`: the command line. Thin: parses, then one call per command into
`vtd.sweep.commands`.

    vtd-sweep run FILE [--workers N] [--gpus 0,1,...] [--dry-run] [--force-new] [--probe]
    vtd-sweep worker FILE [--storage URL] [--tracking-uri URL] [--threads N]
    vtd-sweep status FILE
    vtd-sweep probe FILE [--gpu ID]
    vtd-sweep report FILE
    vtd-sweep ui FILE [--port PORT]
    vtd-sweep eval --weights FILE_OR_FOLDER (--data FOLDER ... | --sweep FILE) [...]
    vtd-sweep prepare SOURCE OUTPUT --target NAME | --targets CSV [...]
    vtd-sweep data FILE [--csv]

A bad sweep file, a data error (or bad input to `prepare`) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from vtd.sweep.commands import data as data_command
from vtd.sweep.commands import probe as probe_command
from vtd.sweep.commands import run as run_command
from vtd.sweep.commands import study, tools
from vtd.sweep.commands import ui as ui_command
from vtd.sweep.commands.common import UsageError

USAGE_ERROR = 2


def _given(args: argparse.Namespace, names: str) -> dict[str, object]:
    """The parsed options of these names, as keyword arguments of a command."""
    return {name: getattr(args, name) for name in names.split()}


def _run(args: argparse.Namespace) -> int:
    retry = args.retry == "out-of-memory"
    options = _given(args, "workers gpus dry_run force_new probe")
    return run_command.run(args.file, retry_out_of_memory=retry, **options)


def _worker(args: argparse.Namespace) -> int:
    return run_command.worker(args.file, **_given(args, "storage tracking_uri threads"))


def _eval(args: argparse.Namespace) -> int:
    options = _given(args, "data subset sweep split model batch_size chunk_size device csv")
    return tools.evaluate(args.weights, **options)


_PREPARE_OPTIONS = (
    "layout head_source head_box split every link force skip_bad_frames target targets person "
    "keypoints test_participants"
)


def _prepare(args: argparse.Namespace) -> int:
    return tools.prepare_folders(args.source, args.output, **_given(args, _PREPARE_OPTIONS))


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    summary: str,
    handler: Callable[[argparse.Namespace], int],
    file_help: str | None = "the sweep file (YAML)",
) -> argparse.ArgumentParser:
    """A command that reads a sweep file (its first argument) and runs `handler`; `summary`:
    its line in `vtd-sweep --help`."""
    command = commands.add_parser(name, help=summary)
    command.add_argument("file", type=Path, help=file_help)
    command.set_defaults(handler=handler)
    return command


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

    run = _command(commands, "run", "create or resume the study and run its trials", _run)
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
        help="first probe every cell (one training and one evaluation step each, on the first "
        "GPU of --gpus) and record those that run out of memory as PRUNED, before any full "
        "trial starts",
    )
    run.add_argument(
        "--retry",
        choices=("out-of-memory",),
        help="out-of-memory: run the out-of-memory trials and the cells they dominated again "
        "(done without asking on other hardware or with a larger memory_cap_mb)",
    )

    probe = _command(
        commands,
        "probe",
        "which grid cells fit in memory: one training and one evaluation step per cell, "
        "each in a trial process, largest batch x chunk first",
        lambda args: probe_command.probe(args.file, args.gpu),
    )
    probe.add_argument(
        "--gpu",
        help="the GPU to probe on, e.g. 1 (CUDA_VISIBLE_DEVICES, as a worker of `run --gpus` "
        "is pinned); default: where a trial without --gpus runs",
    )

    _command(
        commands,
        "sync",
        "bring MLflow up to date from Optuna and the trial folders (one run per trial, "
        "every epoch, the right status); `run` and `report` do it first",
        lambda args: study.sync(args.file),
    )

    worker = _command(
        commands,
        "worker",
        "join the study (made by `run`, or made now) and run its trials until none is "
        "left; start any number, on any number of machines",
        _worker,
    )
    worker.add_argument("--storage", help="Optuna storage URL (default: the file's)")
    worker.add_argument("--tracking-uri", help="MLflow tracking URI (default: the file's)")
    worker.add_argument(
        "--threads", type=int, help="torch threads per trial (default: torch's choice)"
    )

    _command(
        commands,
        "status",
        "a table of the study's trials",
        lambda args: study.status(args.file),
        file_help=None,
    )

    _command(
        commands,
        "report",
        "write studies/<study>/report.md and its plots; log them to MLflow",
        lambda args: study.report(args.file),
        file_help=None,
    )

    ui = _command(
        commands,
        "ui",
        "the MLflow UI for the study's tracking store",
        lambda args: ui_command.ui(args.file, host=args.host, port=args.port),
        file_help=None,
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default: local only)")
    ui.add_argument("--port", type=int, default=5000)

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

    data = _command(
        commands,
        "data",
        "what the sweep's data is, per split and source (clips, frames, image sizes, "
        "formats, skipped frames, groups), before any trial",
        lambda args: data_command.data(args.file, csv=args.csv),
    )
    data.add_argument("--csv", action="store_true", help="print the rows as CSV")
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
    except (SweepFileError, StudyError, PreparationError, StorageError, UsageError) as error:
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


def program(argv: Sequence[str] | None = None) -> int:
    """`vtd-sweep` as a program (its console script, `python -m vtd.cli`): `main`, then the
    process's objects frozen out of the garbage collector, as the process ends next. CPython's
    last collections over every imported module's objects took 0.15-0.25 s of a 0.9 s
    `status` on a 2-core machine (benchmarks/README.md, quick answers)."""
    code = main(argv)
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(program())
