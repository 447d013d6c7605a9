"""`vtd-sweep data` and the data check before any trial, on a miniature of the lab's data
written as the lab's scripts write it (tests/_lab_data.py): `.ppm` 640x480 frames, a header
with spaces, `, ` separators, headerless OpenPose files with `00012.json` frames and `None`."""

from __future__ import annotations

import io
from pathlib import Path

import optuna
import pandas as pd
import pytest
from _lab_data import labelimg_frames, openpose_frames, write_lab_clip
from _sweepfiles import sweep_yaml
from _vtd_sweep import run_vtd_sweep

from vtd.cli import main

SWEEP = sweep_yaml(
    "lab-mini",
    {"batch_size": [2], "chunk_size": [3]},
    data={
        "sources": [{"root": "objectattention", "format": "objectattention"}],
        "on_bad_frame": "skip",
        "validation": {"shows": ["Gabriele"]},
    },
)


def write_lab_miniature(root: Path) -> dict[str, Path]:
    """Three training participants (one of them OpenPose-annotated, with a None row) and a
    test participant; returns the annotation files by participant."""
    # participant: subset, setting, frames, and how the lab's script wrote the file
    clips = {
        "Shiva": ("train", "pringles-masterchef", labelimg_frames(6, out_of_frame=2), {}),
        "Gabriele": ("train", "sugarbox-bleach", labelimg_frames(4), {"header": False}),
        "Simone": (
            "train",
            "mustard",
            openpose_frames(6, no_head=[3]),
            {"name": "S01", "header": False},
        ),
        "Andrea": ("test", "pringles-bleach", labelimg_frames(4, out_of_frame=1), {}),
    }
    return {
        session: write_lab_clip(
            root, subset=subset, session=session, setting=setting, frames=frames, **options
        )
        for session, (subset, setting, frames, options) in clips.items()
    }


@pytest.fixture
def lab_sweep(tmp_path: Path) -> Path:
    write_lab_miniature(tmp_path / "objectattention")
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def test_data_csv_per_split_and_source(lab_sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", str(lab_sweep), "--csv"]) == 0
    rows = pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)
    assert list(rows["split"]) == ["train", "validation", "test"]
    assert set(rows["source"]) == {"objectattention"}
    by_split = rows.set_index("split")
    assert by_split["clips"].to_dict() == {"train": 2, "validation": 1, "test": 1}
    assert by_split["frames"].to_dict() == {"train": 11, "validation": 4, "test": 4}
    assert by_split.loc["train", "in_frame"] == pytest.approx(9 / 11)
    assert by_split.loc["test", "in_frame"] == pytest.approx(3 / 4)
    assert by_split["image_sizes"].to_dict() == {
        "train": "640x480: 11",
        "validation": "640x480: 4",
        "test": "640x480: 4",
    }
    assert by_split["formats"].to_dict() == {
        "train": "objectattention: 1; objectattention (no header): 1",
        "validation": "objectattention (no header): 1",
        "test": "objectattention: 1",
    }
    assert by_split["skipped"].to_dict() == {"train": 1, "validation": 0, "test": 0}
    assert by_split.loc["train", "skipped_why"] == "no head detected: 1"
    assert by_split["group_names"].to_dict() == {
        "train": "Shiva, Simone",
        "validation": "Gabriele",
        "test": "Andrea",
    }


def test_data_table_names_the_skipped_frames(
    lab_sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", str(lab_sweep)]) == 0
    out = capsys.readouterr().out
    assert "640x480: 11" in out and "Gabriele" in out
    skipped = [line for line in out.splitlines() if line.startswith("skipped ")]
    annotation = lab_sweep.parent / "objectattention/annotations/train/Simone/mustard/S01.txt"
    assert len(skipped) == 1 and skipped[0].startswith(f"skipped {annotation}:4: ")
    assert "no head detected" in skipped[0]


def test_data_of_every_searched_fold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lab_miniature(tmp_path / "objectattention")
    path = tmp_path / "sweep.yaml"
    path.write_text(
        SWEEP.replace(
            "  validation: {shows: [Gabriele]}\n",
            "  cross_validation: {folds: 2, fold: 0}\n  validation: {groups: 1}\n",
        ).replace(
            "  chunk_size: [3]\n", "  chunk_size: [3]\n  data.cross_validation.fold: [0, 1]\n"
        )
    )
    assert main(["data", str(path), "--csv"]) == 0
    rows = pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)
    assert list(rows["variant"].unique()) == [
        "data.cross_validation.fold=0",
        "data.cross_validation.fold=1",
    ]
    tested = [
        set(
            rows[(rows["variant"] == label) & (rows["split"] == "test")]["group_names"]
            .iloc[0]
            .split(", ")
        )
        for label in rows["variant"].unique()
    ]
    assert tested[0].isdisjoint(tested[1])
    assert tested[0] | tested[1] == {"Shiva", "Gabriele", "Simone", "Andrea"}


def _one_line_data_error(capsys: pytest.CaptureFixture[str], annotation: Path) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"vtd-sweep: data: {annotation}:4: "), err[0]
    assert "no head detected" in err[0]


@pytest.mark.parametrize(
    "command",
    [["run"], ["run", "--dry-run"], ["worker"], ["data"]],
    ids=["run", "dry-run", "worker", "data"],
)
def test_a_data_error_stops_before_any_study_or_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    files = write_lab_miniature(tmp_path / "objectattention")
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP.replace("  on_bad_frame: skip\n", ""))
    code = main([command[0], str(path), *command[1:]])
    assert code == 2
    _one_line_data_error(capsys, files["Simone"])
    # Nothing written: no Optuna storage, no MLflow database, no study folder.
    assert not (tmp_path / "studies").exists()


def test_a_data_error_leaves_an_existing_study_without_new_trials(
    lab_sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The data breaks after a first dry run: a study stored elsewhere gains no trial.
    storage_file = lab_sweep.parent / "optuna.db"
    storage = f"sqlite:///{storage_file}"
    optuna.create_study(study_name="lab-mini", storage=storage)
    lab_sweep.write_text(SWEEP.replace("  on_bad_frame: skip\n", "") + f"storage: {storage}\n")
    assert main(["run", str(lab_sweep)]) == 2
    capsys.readouterr()
    study = optuna.load_study(study_name="lab-mini", storage=storage)
    assert study.trials == []
    assert not (lab_sweep.parent / "studies" / "mlflow.db").exists()


@pytest.mark.slow
def test_run_on_the_lab_miniature_completes_its_trial(lab_sweep: Path) -> None:
    done = run_vtd_sweep("run", lab_sweep, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 bad frame(s) skipped" in done.stdout
    storage = f"sqlite:///{lab_sweep.parent / 'studies' / 'optuna.db'}"
    study = optuna.load_study(study_name="lab-mini", storage=storage)
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert study.trials[0].value is not None
