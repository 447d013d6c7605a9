"""`vtd-sweep sync`: MLflow brought up to date from Optuna and the trial folders.

A tracker that fails never costs a finished trial: the outcome reaches Optuna first, each
epoch is kept in `trials/<n>/epochs.jsonl`, and `sync` (also run first by `run` and `report`)
gives every trial exactly one MLflow run, its epochs at their steps and its status.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from _services import mlflow_server
from _sweepfiles import sweep_yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests.test_sweep_e2e import TINY_DEMO, make_sweep
from vtd.cli import main
from vtd.sweep.plan.config import Sweep, load_sweep
from vtd.sweep.store.study import open_sweep_study, study_exists


def synced_yaml(lrs: list[str]) -> str:
    return sweep_yaml("synced", {"lr": lrs}, training={"epochs": 2}, demo=TINY_DEMO)


def trial_runs(sweep: Sweep, tracking_uri: str | None = None) -> dict[int, list]:
    """The study's MLflow runs per trial number (active ones)."""
    client = MlflowClient(tracking_uri=tracking_uri or sweep.tracking_uri)
    experiment = client.get_experiment_by_name(sweep.study_name)
    assert experiment is not None
    runs: dict[int, list] = {}
    for run in client.search_runs([experiment.experiment_id]):
        if "optuna_trial" in run.data.tags:
            runs.setdefault(int(run.data.tags["optuna_trial"]), []).append(run)
    return runs


def epochs_file(sweep: Sweep, number: int) -> list[dict]:
    path = sweep.trials_dir / str(number) / "epochs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_mlflow_matches_optuna(sweep: Sweep, tracking_uri: str | None = None) -> None:
    client = MlflowClient(tracking_uri=tracking_uri or sweep.tracking_uri)
    runs = trial_runs(sweep, tracking_uri)
    study = open_sweep_study(sweep, create=False).study
    for trial in study.trials:
        (run,) = runs[trial.number]  # exactly one run per trial
        assert run.info.status == "FINISHED" and run.data.tags["state"] == "COMPLETE"
        history = client.get_metric_history(run.info.run_id, "val_auc")
        kept = epochs_file(sweep, trial.number)
        assert sorted((m.step, m.value) for m in history) == [
            (record["epoch"], pytest.approx(record["validation"]["auc"])) for record in kept
        ]
        assert [record["epoch"] for record in kept] == [0, 1, 2]  # 0: the initial weights


def test_sync_gives_a_trial_whose_run_was_lost_one_run_with_every_epoch(
    tmp_path: Path,
    shared_cache: Path,
    mlflow_template: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = synced_yaml(["1.0e-4"])
    path = make_sweep(tmp_path, text, shared_cache, mlflow_template)
    assert main(["run", str(path)]) == 0
    sweep = load_sweep(path)
    check_mlflow_matches_optuna(sweep)
    capsys.readouterr()
    # MLflow loses the trial's run (as a tracker that was down never had it)
    ((run,),) = trial_runs(sweep).values()
    MlflowClient(tracking_uri=sweep.tracking_uri).delete_run(run.info.run_id)
    assert main(["sync", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1 run(s) created, 3 epoch(s) logged, 1 run(s) ended" in out  # epochs 0, 1, 2
    check_mlflow_matches_optuna(sweep)
    assert main(["sync", str(path)]) == 0  # nothing left to do
    assert "MLflow is up to date" in capsys.readouterr().out


def kill_server_at(url: str) -> None:
    """SIGKILL the process group of the `mlflow server` this test started on `url`."""
    port = url.rsplit(":", 1)[1]
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            command = process.cmdline()
            if "server" in command and port in command and os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, signal.SIGKILL)
                return
    raise AssertionError(f"no mlflow server of this test on {url}")


@pytest.mark.slow
def test_the_mlflow_server_killed_in_the_middle_of_a_study(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    text = synced_yaml(["1.0e-4", "2.0e-4", "3.0e-4"])
    path = make_sweep(tmp_path / "project", text, shared_cache, mlflow_template)
    with mlflow_server(backend, tmp_path / "artifacts", tmp_path / "mlflow-1.log") as url:
        path.write_text(f"tracking_uri: {url}\n" + text)
        sweep = load_sweep(path)
        finished, killed = threading.Event(), threading.Event()

        def kill_after_the_first_trial() -> None:
            while not finished.is_set():
                time.sleep(0.2)
                if not study_exists(sweep):  # `run` has not made it yet
                    continue
                trials = open_sweep_study(sweep, create=False).study.get_trials(deepcopy=False)
                if any(trial.state == TrialState.COMPLETE for trial in trials):
                    kill_server_at(url)
                    killed.set()
                    return

        killer = threading.Thread(target=kill_after_the_first_trial)
        killer.start()
        code = main(["run", str(path)])
        finished.set()
        killer.join()
    assert killed.is_set()  # the server died while trials were left
    # the study went on without MLflow; `run` ends with one line about MLflow (its report)
    assert code == 1
    study = open_sweep_study(sweep, create=False).study
    assert len(study.trials) == 3  # no trial trained again
    assert all(trial.state == TrialState.COMPLETE for trial in study.trials)
    # a server again on the same backend store: sync fills it in
    with mlflow_server(backend, tmp_path / "artifacts", tmp_path / "mlflow-2.log") as url:
        path.write_text(f"tracking_uri: {url}\n" + text)
        # in a fresh process, as a user runs it: this process's MLflow client caches each run's
        # artifact repository, which still names the dead server's port
        synced = subprocess.run(
            [sys.executable, "-m", "vtd.cli", "sync", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        check_mlflow_matches_optuna(load_sweep(path), url)
