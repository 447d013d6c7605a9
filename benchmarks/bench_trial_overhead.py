"""Per-trial orchestration overhead of `vtd-sweep` against the same training call in-process.

    .venv/bin/python benchmarks/bench_trial_overhead.py [--trials 5]

A tiny demo study (small model, 1 epoch, `--trials` learning rates) is run twice:
1. in-process: `vtd.train.finetune(config)` for each trial's resolved configuration, in this
   process (torch already imported), timed per call;
2. as a sweep: `run_worker` on the prepared study, each trial in a process forked from the
   preloaded fork server, reported to Optuna and MLflow.
Overhead per trial = trial wall time (claim to last report, incl. process start, study and
MLflow bookkeeping, artifacts) minus the training time measured inside the trial process;
also shown: sweep trial wall time minus the in-process call time. One-time costs (fork server
start, study and database creation) are reported apart. Target: under 2 s per trial.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

# The tests' sweep files (tests/_sweepfiles.py): this benchmark times the tiny demo sweep they
# train, so that a change there is measured here too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")

    started = time.perf_counter()
    import optuna
    from _sweepfiles import sweep_yaml

    from vtd.sweep.execute.runner import TrialLauncher
    from vtd.sweep.execute.session import prepare
    from vtd.sweep.execute.worker import run_worker
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.results import trials_frame
    from vtd.train import finetune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    print(f"imports (torch, optuna, mlflow, vtd): {time.perf_counter() - started:.1f} s")

    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as folder:
        lrs = [f"{(index + 1) * 1.0e-4:.1e}" for index in range(args.trials)]
        path = Path(folder) / "sweep.yaml"
        path.write_text(sweep_yaml("overhead", {"lr": lrs}))
        sweep = load_sweep(path)

        launcher = TrialLauncher()
        started = time.perf_counter()
        launcher.warm_up()
        study_plan = prepare(sweep, launcher=launcher)
        print(
            f"one-time: fork server start + demo data + study and MLflow databases: "
            f"{time.perf_counter() - started:.1f} s ({study_plan.total} trials queued)"
        )

        in_process = []
        for index, item in enumerate(study_plan.queued):
            config = item.resolved.config.model_copy(
                update={"output_dir": Path(folder) / "in-process" / str(index)}
            )
            started = time.perf_counter()
            finetune(config)
            in_process.append(time.perf_counter() - started)

        started = time.perf_counter()
        ended = run_worker(sweep, launcher=launcher)
        sweep_wall = time.perf_counter() - started
        trials = trials_frame(sweep)
        assert len(ended) == args.trials and set(trials["state"]) == {"COMPLETE"}
        walls = [event.seconds for event in ended]
        inside = list(trials.sort_values("number")["train_seconds"])
        overhead = [wall - train for wall, train in zip(walls, inside, strict=True)]

    def describe(values: list[float]) -> str:
        middle = statistics.median(values)
        return f"median {middle:.2f} s (min {min(values):.2f}, max {max(values):.2f})"

    print(
        f"in-process finetune call:           {describe(in_process)}  first {in_process[0]:.2f} s"
    )
    print(f"sweep trial, wall:                  {describe(walls)}")
    print(f"sweep trial, training inside:       {describe(inside)}")
    print(f"overhead per trial (wall - inside): {describe(overhead)}")
    print(
        "sweep wall - in-process (medians):  "
        f"{statistics.median(walls) - statistics.median(in_process):.2f} s"
    )
    print(f"worker loop total: {sweep_wall:.1f} s for {len(ended)} trials")


if __name__ == "__main__":
    main()
