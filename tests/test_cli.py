"""The `vtd-sweep` command: bad input is one line and exit code 2; dry runs write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from _sweepfiles import SMALL_GRID, files_sweep_yaml
from _vtd_sweep import run_vtd_sweep

from vtd.cli import main

SWEEP = files_sweep_yaml("cli-test", SMALL_GRID)


def test_a_bad_sweep_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP.replace("chunk_size: [2, 3]", "chunk_size: [2, three]"))
    done = run_vtd_sweep("run", path, timeout=120)
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
    from _data_factory import write_dataset

    # A dry run checks the data too: it has to be there.
    write_dataset(
        tmp_path / "data" / "objectattention",
        layout="objectattention",
        shows=["P01", "P02", "P03"],
        subset_of={"P03": "test"},
    )
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 to queue, 0 already queued" in out
    rows = [line.split("│")[1:3] for line in out.splitlines() if line.startswith("│")]
    assert sorted((int(b), int(c)) for b, c in rows) == [(2, 2), (2, 3), (4, 2), (4, 3)]
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


def test_eval_a_checkpoint_on_data_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vtd.demo.generate import DemoConfig, DemoLayout, generate_demo
    from vtd.model import VTD, ModelConfig, save_checkpoint

    tiny = DemoLayout(train_shows=1, test_shows=1, clips_per_show=1, width=96, height=72)
    demo = generate_demo(
        tmp_path / "demo",
        DemoConfig(min_frames=8, max_frames=8, objectattention=tiny, videoattentiontarget=tiny),
    )
    weights = tmp_path / "fresh.pt"
    save_checkpoint(VTD(ModelConfig(variant="small")), weights)
    table = tmp_path / "metrics.csv"
    command = ["eval", "--weights", str(weights), "--model", "small", "--device", "cpu"]
    data = ["--data", str(demo.objectattention.root), "--csv", str(table)]
    assert main([*command, *data]) == 0
    assert "fresh.pt" in capsys.readouterr().out
    lines = table.read_text().splitlines()
    assert lines[0].startswith("checkpoint,epoch,auc,dist,ap,loss,frames")
    assert len(lines) == 2 and lines[1].split(",")[6] == "8"  # the one 8-frame test clip
    assert main([*command[:2], str(tmp_path / "absent.pt"), *command[3:], *data]) == 2
    assert "absent.pt: no such checkpoint" in capsys.readouterr().err
