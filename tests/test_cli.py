"""The `vtd-sweep` command: bad input is one line and exit code 2; dry runs write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vtd.cli import main

SWEEP = """\
study: cli-test
sampler: grid
data:
  sources: [data/objectattention]
  validation: {groups: 1}
training:
  model: {variant: small}
  epochs: 1
search_space:
  batch_size: [2, 4]
  chunk_size: [2, 3]
"""


def test_a_bad_sweep_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP.replace("chunk_size: [2, 3]", "chunk_size: [2, three]"))
    done = subprocess.run(
        [sys.executable, "-m", "vtd.cli", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"vtd-sweep: {path}:11: search_space.chunk_size[1]: Input should be a valid integer, "
        "unable to parse string as an integer (got 'three')"
    ]
    assert not (tmp_path / "studies").exists()


def test_dry_run_lists_the_trials_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 to queue, 0 already queued" in out
    assert "batch_size=4, chunk_size=3" in out
    assert not (tmp_path / "studies").exists()


def test_status_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    assert main(["status", str(path)]) == 0
    assert "no trials yet" in capsys.readouterr().out


def test_prepare_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "recordings"
    source.mkdir()
    assert main(["prepare", str(source), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vtd-sweep: ")
    assert "target" in err[0]
