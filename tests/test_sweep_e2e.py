"""End to end: real trial processes training the small model on a tiny demo data set.

Every outcome for real: out-of-memory errors (CUDA, host, over the per-trial cap) give
PRUNED trials with the reason in Optuna and MLflow, and the cells they dominate are pruned
without running; an exception, a killed trial process and one exiting early give FAILED
trials and the study goes on; the pruner ends a trial after the epoch it judged (PRUNED);
finished cells are not run again; two workers run every cell once; Ctrl-C marks the running
trial interrupted and it is queued again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from _sweepfiles import demo_yaml, sweep_yaml
from _vtd_sweep import run_vtd_sweep
from mlflow import MlflowClient
from optuna.trial import TrialState

from vtd.sweep.execute.session import plan, prepare, run_prepared, run_sweep
from vtd.sweep.plan.config import Sweep, load_sweep
from vtd.sweep.reporting.results import epochs_frame, trials_frame
from vtd.sweep.store.study import open_sweep_study

# The demo data of every sweep here; `demo_pretrained` trains the demo-pretrained weights fast.
TINY_DEMO = demo_yaml(
    videoattentiontarget={"clips_per_show": 2},
    demo_pretrained={"epochs": 1, "batch_size": 2, "chunk_size": 4},
)

OUTCOMES = sweep_yaml(
    "outcomes",
    {"lr": [f"{n}.0e-4" for n in range(1, 8)], "batch_size": [1, 2]},
    memory_cap_mb=1500,
    faults=[
        {"kind": "cuda_oom", "epoch": 0, "when": {"lr": "1.0e-4"}},
        {"kind": "memory_cap", "epoch": 0, "when": {"lr": "2.0e-4"}},
        {"kind": "host_oom", "epoch": 0, "when": {"lr": "3.0e-4"}},
        {"kind": "exception", "epoch": 0, "when": {"lr": "4.0e-4"}},
        {"kind": "sigkill", "epoch": 0, "when": {"lr": "5.0e-4"}},
        {"kind": "exit", "epoch": 0, "exit_code": 7, "when": {"lr": "6.0e-4"}},
    ],
    demo=TINY_DEMO,
)


def make_sweep(folder: Path, text: str, cache: Path, mlflow_db: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".cache").symlink_to(cache, target_is_directory=True)
    (folder / "studies").mkdir()
    shutil.copyfile(mlflow_db, folder / "studies" / "mlflow.db")
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path


def mlflow_runs(sweep: Sweep) -> dict[int, object]:
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    experiment = client.get_experiment_by_name(sweep.study_name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    return {
        int(run.data.tags["optuna_trial"]): run for run in runs if "optuna_trial" in run.data.tags
    }


def test_every_outcome_for_real(tmp_path: Path, shared_cache: Path, mlflow_template: Path) -> None:
    sweep = load_sweep(make_sweep(tmp_path, OUTCOMES, shared_cache, mlflow_template))
    outcome = run_sweep(sweep)
    assert not outcome.interrupted and len(outcome.ended) == 14

    trials = trials_frame(sweep).set_index(["lr", "batch_size"])
    runs = mlflow_runs(sweep)
    client = MlflowClient(tracking_uri=sweep.tracking_uri)

    def row(lr: float, batch: int) -> dict:
        return trials.loc[(lr, batch)].to_dict()

    def check(lr: float, batch: int, state: str, reason: str, status: str) -> dict:
        trial = row(lr, batch)
        assert trial["state"] == state, trial
        assert reason in trial["reason"], trial["reason"]
        run = runs[int(trial["number"])]
        assert run.info.status == status
        assert run.data.tags["state"] == state
        assert reason in run.data.tags["reason"]
        assert run.data.tags["mlflow.parentRunId"] == outcome.parent_run_id
        return trial

    # out of memory: PRUNED with reason, sizes and memory figures; bigger cells not run
    cuda = check(1e-4, 1, "PRUNED", "pruned: out-of-memory (CUDA) at batch 1, chunk 3", "KILLED")
    assert cuda["out_of_memory"] and cuda["ran"] and cuda["peak_host_mb"] > 0
    capped = check(2e-4, 1, "PRUNED", "pruned: out-of-memory (host):", "KILLED")
    assert "over the 1500 MB cap at batch 1, chunk 3" in capped["reason"]
    assert capped["peak_host_mb"] > 1500 and capped["memory_cap_mb"] == 1500
    check(3e-4, 1, "PRUNED", "pruned: out-of-memory (host) at batch 1, chunk 3", "KILLED")
    for lr, oom in ((1e-4, 1), (2e-4, 1), (3e-4, 1)):
        dominated = check(
            lr, 2, "PRUNED", f"pruned: dominated by out-of-memory at batch {oom}, chunk 3", "KILLED"
        )
        assert not dominated["ran"] and dominated["out_of_memory"]
        assert not (sweep.trials_dir / str(dominated["number"]) / "trial.log").exists()
        assert runs[int(dominated["number"])].data.metrics == {}

    # failures: FAILED with the error, the signal or the exit code; the study went on
    for batch in (1, 2):
        failed = check(
            4e-4, batch, "FAIL", "failed: InjectedFault: injected fault at epoch 0", "FAILED"
        )
        assert "InjectedFault" in failed["error_type"]
        killed = check(5e-4, batch, "FAIL", "failed: trial process killed by SIGKILL", "FAILED")
        assert killed["signal"] == "SIGKILL"
        exited = check(6e-4, batch, "FAIL", "exited with code 7 without a result", "FAILED")
        assert exited["exit_code"] == 7
        trained = check(7e-4, batch, "COMPLETE", "", "FINISHED")
        assert 0 <= trained["value"] <= 1 and trained["best_epoch"] == 1
    study = open_sweep_study(sweep, create=False).study
    log_tail = study.trials[int(row(4e-4, 1)["number"])].user_attrs["log_tail"]
    assert "InjectedFault: injected fault at epoch 0" in log_tail

    # per-epoch metrics of the trained trials in MLflow at step 1, their checkpoint logged
    epochs = epochs_frame(sweep)
    for batch in (1, 2):
        number = int(row(7e-4, batch)["number"])
        mine = epochs[epochs["number"] == number]
        assert list(mine["epoch"]) == [0, 1]  # epoch 0: the initial weights, evaluated
        assert mine["val_auc"].iloc[1] == pytest.approx(row(7e-4, batch)["value"])
        for key in ("val_dist", "val_ap", "val_loss", "test_auc", "epoch_seconds"):
            assert key in mine.columns and mine[key].notna().all(), key
        assert list(mine["train_loss"].notna()) == [False, True]  # nothing trained at epoch 0
        artifacts = {
            item.path for item in client.list_artifacts(runs[number].info.run_id, "checkpoints")
        }
        assert artifacts == {"checkpoints/best.pt", "checkpoints/best.json"}
        # a local artifact store holds the checkpoint as a link to the trial's, not a copy
        logged = Path(runs[number].info.artifact_uri) / "checkpoints" / "best.pt"
        assert logged.samefile(sweep.trials_dir / str(number) / "best.pt")

    # the same file again: only the failed cells are queued again, nothing else
    again = plan(sweep)
    assert sorted(
        (item.resolved.params["lr"], item.resolved.params["batch_size"]) for item in again.queued
    ) == [(lr, batch) for lr in (4e-4, 5e-4, 6e-4) for batch in (1, 2)]
    assert all(item.origin == "retry" and len(item.retry_of) == 1 for item in again.queued)


SAMPLED = sweep_yaml(
    "sampled",
    {"model.lstm_dropout": [0.0, 0.5]},
    sampler={"name": "random", "seed": 3},
    n_trials=5,
    repeats=2,
    demo=TINY_DEMO,
)


def test_sampled_configurations_run_once_per_seed(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    sweep = load_sweep(make_sweep(tmp_path, SAMPLED, shared_cache, mlflow_template))
    run_sweep(sweep)
    trials = trials_frame(sweep)
    assert (trials["origin"] == "sampled").sum() == 5  # the budget, duplicates included
    ran = trials[trials["ran"]]
    copied = trials[trials["duplicate_of"].notna()]
    assert set(ran["state"]) == {"COMPLETE"} and ran["config_hash"].is_unique
    # two choices of dropout: at most two configurations, each trained with both seeds
    assert len(ran) == 2 * ran["cell_hash"].nunique() and ran["cell_hash"].nunique() <= 2
    assert sorted(ran.groupby("cell_hash")["seed"].apply(sorted).tolist()) == [[0, 1]] * len(
        ran["cell_hash"].unique()
    )
    assert len(copied) == len(trials) - len(ran) >= 3
    for copy in copied.itertuples():
        original = trials.set_index("number").loc[int(copy.duplicate_of)]
        assert copy.config_hash == original["config_hash"] and copy.value == original["value"]
        assert pd.isna(copy.mlflow_run_id)
    assert sorted(mlflow_runs(sweep)) == sorted(ran["number"])
    again = plan(sweep)
    assert again.queued == [] and again.to_sample == 0


PRUNED = sweep_yaml(
    "pruned",
    {"lr": ["1.0e-4"]},
    objective={"metric": "dist"},
    pruner={"name": "median", "n_startup_trials": 1},
    training={"epochs": 3},
    demo=TINY_DEMO,
)


def test_the_pruner_stops_a_trial_after_the_epoch_it_judged(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    sweep = load_sweep(make_sweep(tmp_path, PRUNED, shared_cache, mlflow_template))
    study_plan = prepare(sweep)
    # A finished trial at distance 0 in every epoch: any real trial is worse than its median.
    open_sweep_study(sweep, create=False).study.add_trial(
        optuna.trial.create_trial(value=0.0, intermediate_values={1: 0.0, 2: 0.0, 3: 0.0})
    )
    outcome = run_prepared(sweep, study_plan)
    (ended,) = outcome.ended
    assert ended.state == "PRUNED"
    assert ended.reason == "pruned: stopped by the median pruner at epoch 1"
    trial = open_sweep_study(sweep, create=False).study.trials[ended.number]
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]
    assert trial.user_attrs["pruned_at_epoch"] == 1 and trial.user_attrs["epochs_done"] == 1
    assert trial.user_attrs["best_epoch"] == 1
    run = mlflow_runs(sweep)[ended.number]
    assert run.info.status == "KILLED" and run.data.tags["state"] == "PRUNED"
    history = MlflowClient(sweep.tracking_uri).get_metric_history(run.info.run_id, "val_dist")
    assert [metric.step for metric in history] == [0, 1]  # epoch 0 logged, never judged


GRID = sweep_yaml(
    "grid",
    {"batch_size": [1, 2], "initial_weights": ["fresh", "demo-pretrained"]},
    training={"epochs": 2},
    demo=TINY_DEMO,
)


@pytest.mark.slow
def test_a_grid_runs_each_cell_once_and_resumes(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    path = make_sweep(tmp_path, GRID, shared_cache, mlflow_template)
    command = [sys.executable, "-m", "vtd.cli", "run", str(path)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    sweep = load_sweep(path)
    trials = trials_frame(sweep)
    assert len(trials) == 4 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    assert sweep.weights.demo_checkpoint.is_file()
    epochs = epochs_frame(sweep)
    for number in trials["number"]:
        assert list(epochs[epochs["number"] == number]["epoch"]) == [0, 1, 2]
    second = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 trial(s) to run" in second.stdout
    assert len(trials_frame(sweep)) == 4
    runs = mlflow_runs(sweep)
    assert sorted(runs) == list(trials["number"])


@pytest.mark.slow
def test_two_workers_run_every_cell_once(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    text = (
        GRID.replace("epochs: 2", "epochs: 1").replace(
            "initial_weights: [fresh, demo-pretrained]", "chunk_size: [2, 4]"
        )
        + "repeats: 2\n"
    )
    path = make_sweep(tmp_path, text, shared_cache, mlflow_template)
    done = run_vtd_sweep("run", path, "--workers", "2", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = load_sweep(path)
    trials = trials_frame(sweep)
    assert len(trials) == 8
    assert set(trials["state"]) == {"COMPLETE"}
    assert trials["config_hash"].is_unique
    runs = mlflow_runs(sweep)
    assert sorted(runs) == list(range(8))
    assert {run.info.status for run in runs.values()} == {"FINISHED"}
    # one parent run; both workers took trials
    assert len({run.data.tags["mlflow.parentRunId"] for run in runs.values()}) == 1
    assert len({run.data.tags["worker"] for run in runs.values()}) == 2


@pytest.mark.slow
def test_ctrl_c_marks_the_trial_interrupted_and_it_runs_again(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    text = (
        GRID.replace("epochs: 2", "epochs: 5")
        .replace("initial_weights: [fresh, demo-pretrained]", "chunk_size: [2]")
        .replace("[1, 2]", "[1]")
    )
    path = make_sweep(tmp_path, text, shared_cache, mlflow_template)
    process = subprocess.Popen(
        [sys.executable, "-m", "vtd.cli", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "studies" / "grid" / "trials" / "0" / "trial.log"
    deadline = time.monotonic() + 300
    while not (log.is_file() and "epoch 1:" in log.read_text()):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "interrupted" in stdout
    sweep = load_sweep(path)
    trial = open_sweep_study(sweep, create=False).study.trials[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"] is True
    run = mlflow_runs(sweep)[0]
    assert run.info.status == "KILLED"
    assert [
        metric.step
        for metric in MlflowClient(sweep.tracking_uri).get_metric_history(
            run.info.run_id, "val_auc"
        )
    ][:2] == [0, 1]
    again = plan(sweep)
    assert [item.retry_of for item in again.queued] == [(0,)]


def test_prepare_twice_queues_once(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    sweep = load_sweep(make_sweep(tmp_path, OUTCOMES, shared_cache, mlflow_template))
    assert prepare(sweep).total == 14
    assert prepare(sweep).total == 14  # the 14 queued before, none added
    assert len(open_sweep_study(sweep, create=False).study.trials) == 14


def test_force_new_replaces_a_changed_study(tmp_path: Path, mlflow_template: Path) -> None:
    from vtd.sweep.store.study import StudyError
    from vtd.sweep.store.tracking import Tracker

    text = (
        "study: replaced\nsampler: grid\n"
        "data: {sources: [data/objectattention], validation: {groups: 1}}\n"
        "training: {model: {variant: small}}\n"
        "search_space: {batch_size: [2, 4]}\n"
    )
    from _data_factory import write_dataset

    # The data is checked before the study is made: it has to be there.
    write_dataset(
        tmp_path / "data" / "objectattention",
        layout="objectattention",
        shows=["A", "B", "C"],
        subset_of={"C": "test"},
    )
    (tmp_path / "studies").mkdir()
    shutil.copyfile(mlflow_template, tmp_path / "studies" / "mlflow.db")
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    sweep = load_sweep(path)
    assert prepare(sweep).total == 2
    (sweep.trials_dir / "0").mkdir(parents=True)
    path.write_text(text.replace("[2, 4]", "[2, 4, 8]"))
    changed = load_sweep(path)
    with pytest.raises(StudyError, match="another search_space"):
        prepare(changed)
    assert prepare(changed, force_new=True).total == 3
    assert len(open_sweep_study(changed, create=False).study.trials) == 3
    assert not sweep.study_dir.exists()
    assert [p.name.startswith("replaced.replaced-") for p in sweep.studies_dir.iterdir()].count(
        True
    ) == 1
    names = {e.name for e in Tracker(changed).client.search_experiments()}
    assert "replaced" in names and any(name.startswith("replaced.replaced-") for name in names)


NAN_LOSS = sweep_yaml(
    "diverged",
    {"lr": ["1.0e-4", "2.0e-4"]},
    training={"epochs": 2},
    faults=[{"kind": "nan_loss", "epoch": 2, "when": {"lr": "1.0e-4"}}],
    demo=TINY_DEMO,
)


def test_a_nan_loss_ends_the_trial_failed_through_the_cli(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vtd.cli import main

    path = make_sweep(tmp_path, NAN_LOSS, shared_cache, mlflow_template)
    assert main(["run", str(path)]) == 0
    sweep = load_sweep(path)
    trials = trials_frame(sweep).set_index("lr")
    diverged, healthy = trials.loc[1e-4], trials.loc[2e-4]
    assert diverged["state"] == "FAIL"
    assert diverged["reason"] == "failed: NonFiniteLoss: non-finite loss at epoch 2, chunk 1"
    assert healthy["state"] == "COMPLETE" and 0 <= healthy["value"] <= 1
    # epochs 0 (the initial weights) and 1 were reported before the NaN; epoch 2 never reached
    # Optuna or MLflow
    epochs = epochs_frame(sweep)
    assert list(epochs[epochs["number"] == diverged["number"]]["epoch"]) == [0, 1]
    run = mlflow_runs(sweep)[int(diverged["number"])]
    assert run.info.status == "FAILED" and "non-finite loss at epoch 2" in run.data.tags["reason"]
    log = (sweep.trials_dir / str(int(diverged["number"])) / "trial.log").read_text()
    assert "injected fault at epoch 2: nan_loss" in log

    # `status` shows the healthy trial's validation metrics at its selected epoch, the
    # report's definition, and says so under the table
    mine = epochs[epochs["number"] == healthy["number"]].set_index("epoch")
    selected = int(healthy["best_epoch"])
    assert healthy["value"] == mine.loc[selected, "val_auc"] == max(mine["val_auc"])
    capsys.readouterr()
    assert main(["status", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "at each trial's selected epoch, the epoch of its best validation AUC" in shown
    (line,) = [row for row in shown.splitlines() if "COMPLETE" in row and "study" not in row]
    cells = line.split()
    assert f"{mine.loc[selected, 'val_auc']:.3f}" in cells
    assert f"{mine.loc[selected, 'val_dist']:.3f}" in cells


ONE_CELL = sweep_yaml(
    "survive",
    {"lr": ["1.0e-4"]},
    heartbeat={"interval_s": 1, "grace_s": 600},
    training={"epochs": 2},
    demo=TINY_DEMO,
)


def _run_until(path: Path, log: Path, mark: str) -> subprocess.Popen:
    """`vtd-sweep run` in the background until the trial log at `log` shows `mark`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vtd.cli", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (log.is_file() and mark in log.read_text()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{mark!r} never appeared in {log}"
        time.sleep(0.2)
    return process


def test_ctrl_c_a_killed_worker_and_resume_small(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    """The fast suite's version of the slow Ctrl-C, killed-worker and resume tests: one cell.

    Ctrl-C during training (trial 0 interrupted); the next run's worker is SIGKILLed while it trains
    the cell again (trial 1); the run after that finds the dead worker at once (its grace
    period is 10 minutes) and trains the cell (trial 2); one more run has nothing to do.
    """
    path = make_sweep(tmp_path, ONE_CELL, shared_cache, mlflow_template)
    trials = tmp_path / "studies" / "survive" / "trials"
    # at the initial weights' evaluation: both epochs still to train when the signal lands
    # (at "epoch 1:" a loaded machine sometimes finished epoch 2 before the signal came)
    interrupted = _run_until(path, trials / "0" / "trial.log", "epoch 0 (initial weights)")
    interrupted.send_signal(signal.SIGINT)
    out, _ = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130 and "interrupted" in out

    killed = _run_until(path, trials / "1" / "trial.log", "training into")
    sweep = load_sweep(path)
    study = open_sweep_study(sweep, create=False).study
    worker = study.trials[1].user_attrs["worker"]
    pid = int(worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    if pid != killed.pid:  # a worker process of its own: its parent ends once it is gone
        killed.wait(120)
    else:
        killed.wait(10)

    resumed = run_vtd_sweep("run", path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    study = open_sweep_study(sweep, create=False).study
    states = [(t.number, t.state) for t in study.trials]
    assert states == [(0, TrialState.FAIL), (1, TrialState.FAIL), (2, TrialState.COMPLETE)]
    first, lost, retry = study.trials
    assert first.user_attrs["interrupted"] is True
    assert lost.user_attrs["worker_lost"] is True
    assert lost.user_attrs["reason"].startswith(f"failed: worker {worker} lost (its process")
    assert lost.user_attrs["retry_of"] == [0] and retry.user_attrs["retry_of"] == [0, 1]
    assert retry.params == first.params and retry.user_attrs["best_epoch"] in (1, 2)
    runs = mlflow_runs(sweep)
    assert [runs[n].info.status for n in (0, 1, 2)] == ["KILLED", "KILLED", "FINISHED"]

    again = run_vtd_sweep("run", path, timeout=600)
    assert again.returncode == 0 and "0 trial(s) to run" in again.stdout
    assert len(open_sweep_study(sweep, create=False).study.trials) == 3
