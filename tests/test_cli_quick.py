"""Quick answers (issue 13 item 6): `--help`, `status` and `run --dry-run` import neither torch
nor torchvision, nor mlflow (a second of imports on its own), nor pandas (0.15 to 0.25 s); the
time is measured by `benchmarks/bench_quick_answers.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _lab_data import labelimg_frames, write_lab_clip
from _sweepfiles import SMALL_GRID, files_sweep_yaml

SWEEP = files_sweep_yaml("quick-test", SMALL_GRID)

HEAVY = ("torch", "torchvision", "mlflow", "pandas")

# Runs the command in a fresh interpreter and prints which heavy modules it loaded.
PROBE = """
import json, sys
from vtd.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "loaded": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def _loaded(*argv: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    # `run --dry-run` checks the data before anything else, so there is data to check
    root = tmp_path / "data" / "objectattention"
    for subset, sessions in (("train", ("s1", "s2")), ("test", ("s3",))):
        for session in sessions:
            write_lab_clip(
                root, subset=subset, session=session, setting="set1", frames=labelimg_frames(3)
            )
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def test_help_loads_no_heavy_module() -> None:
    assert _loaded("--help") == {"code": 0, "loaded": []}
    assert _loaded("run", "--help") == {"code": 0, "loaded": []}


def test_status_and_dry_run_before_the_study_exists(sweep_file: Path) -> None:
    assert _loaded("status", str(sweep_file)) == {"code": 0, "loaded": []}
    assert _loaded("run", str(sweep_file), "--dry-run") == {"code": 0, "loaded": []}
    assert not (sweep_file.parent / "studies").exists()


def test_status_and_dry_run_of_a_prepared_study(sweep_file: Path) -> None:
    from vtd.sweep.execute.session import prepare
    from vtd.sweep.plan.config import load_sweep

    prepare(load_sweep(sweep_file))  # the study and its MLflow experiment, 4 trials queued
    assert _loaded("status", str(sweep_file)) == {"code": 0, "loaded": []}
    assert _loaded("run", str(sweep_file), "--dry-run") == {"code": 0, "loaded": []}


def test_the_commands_that_train_still_load_torch(sweep_file: Path) -> None:
    """The probe above can fail: `eval` needs torch, and the probe sees it."""
    loaded = _loaded(
        "eval", "--weights", str(sweep_file.parent / "none.pt"), "--sweep", str(sweep_file)
    )
    assert "torch" in loaded["loaded"]
