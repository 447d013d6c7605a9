"""A trial's checkpoint among its MLflow artifacts: a hard link into a local artifact store
(no second copy of hundreds of MB), a copy where a link cannot be made."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from _sweepfiles import sweep_yaml, write_sweep

from vtd.sweep.plan.config import load_sweep
from vtd.sweep.store.tracking import Tracker


def _ended_run(tmp_path: Path, mlflow_template: Path) -> tuple[Tracker, str, Path]:
    """A trial run ended with a checkpoint and a log as its artifacts; the tracker, its id
    and the trial folder."""
    path = write_sweep(tmp_path, sweep_yaml("artifacts", {"batch_size": [2]}))
    (tmp_path / "studies").mkdir()
    shutil.copyfile(mlflow_template, tmp_path / "studies" / "mlflow.db")
    tracker = Tracker(load_sweep(path))
    run_id = tracker.start_trial_run(None, {"optuna_trial": 0}, {"batch_size": 2})
    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / "best.pt").write_bytes(os.urandom(4096))
    (trial / "trial.log").write_text("trained\n")
    tracker.end_trial_run(
        run_id,
        status="FINISHED",
        tags={"state": "COMPLETE"},
        artifacts=[(trial / "best.pt", "checkpoints"), (trial / "trial.log", None)],
    )
    return tracker, run_id, trial


def _artifact(tracker: Tracker, run_id: str, relative: str) -> Path:
    return Path(tracker.client.get_run(run_id).info.artifact_uri) / relative


def test_the_checkpoint_is_linked_and_the_log_copied(tmp_path: Path, mlflow_template: Path) -> None:
    tracker, run_id, trial = _ended_run(tmp_path, mlflow_template)
    checkpoint = _artifact(tracker, run_id, "checkpoints/best.pt")
    assert checkpoint.samefile(trial / "best.pt")
    log = _artifact(tracker, run_id, "trial.log")
    assert log.read_text() == "trained\n" and not log.samefile(trial / "trial.log")
    # the trial's next save replaces its file: the logged checkpoint stays as it was
    logged = checkpoint.read_bytes()
    replacement = trial / ".best.pt.new"
    replacement.write_bytes(b"a later epoch")
    replacement.replace(trial / "best.pt")
    assert checkpoint.read_bytes() == logged


def test_where_no_link_can_be_made_it_is_copied(
    tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other_file_system(source: object, target: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", other_file_system)
    tracker, run_id, trial = _ended_run(tmp_path, mlflow_template)
    checkpoint = _artifact(tracker, run_id, "checkpoints/best.pt")
    assert checkpoint.read_bytes() == (trial / "best.pt").read_bytes()
    assert not checkpoint.samefile(trial / "best.pt")
    assert [path.name for path in checkpoint.parent.iterdir()] == ["best.pt"]  # no leftover
