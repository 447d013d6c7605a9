"""`vtd-sweep probe` and `run --probe` (issue 13 item 5): which cells fit, learnt per cell.

The slow test runs real trial processes of the small model under a host-memory cap that the
biggest cell (batch 8 x chunk 16: 128 frames a step) exceeds for real and batch 2 x chunk 16
(32 frames) stays well under. The fast tests check the order, the domination rule
and the reason written for a probed trial, without processes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _sweepfiles import demo_yaml, sweep_yaml, write_sweep
from optuna.trial import TrialState

from vtd.sweep.execute.probe import (
    CellProbe,
    dominating_failure,
    probe_cells,
    probed_attrs,
    probed_outcome,
)
from vtd.sweep.plan.config import load_sweep
from vtd.sweep.store.queue import current_device

# Peak RSS of a probe's training step, measured on this machine: batch 2 x chunk 2 676 MB,
# 2 x 16 843 MB, 8 x 2 710 MB, 8 x 16 1183 MB (torch and the model alone: ~0.65 GB).
CAP_MB = 1000


def _sweep_file(folder: Path, chunks: tuple[int, ...] = (2, 16), **more_space: object) -> Path:
    space = {"batch_size": [2, 8], "chunk_size": list(chunks), **more_space}
    # Clips of 16 frames, 8 training clips (two sessions of 4; one more held out for validation),
    # so that batch 8 x chunk 16 fills a whole chunk with 128 frames.
    demo = demo_yaml(3, frames=16, objectattention={"train_shows": 3, "clips_per_show": 4})
    return write_sweep(folder, sweep_yaml("probe-test", space, memory_cap_mb=CAP_MB, demo=demo))


def test_cells_largest_first_weights_probed_once(tmp_path: Path) -> None:
    weights = ["fresh", "demo-pretrained"]
    cells = probe_cells(load_sweep(_sweep_file(tmp_path, initial_weights=weights)))
    assert [(cell.batch_size, cell.chunk_size) for cell in cells] == [
        (8, 16),
        (2, 16),
        (8, 2),
        (2, 2),
    ]
    # each probed configuration stands for both initial weights, and loads neither
    assert all(len(cell.params) == 2 for cell in cells)
    assert {params["initial_weights"] for params in cells[0].params} == {
        "fresh",
        "demo-pretrained",
    }
    assert all(cell.config.initial_weights is None for cell in cells)


def test_a_failing_cell_dominates_bigger_ones_of_its_context(tmp_path: Path) -> None:
    lrs = ["1.0e-4", "2.0e-4"]
    cells = {
        (cell.batch_size, cell.chunk_size, cell.config.lr): cell
        for cell in probe_cells(load_sweep(_sweep_file(tmp_path, lr=lrs)))
    }
    failed = [CellProbe(cells[(2, 16, 1.0e-4)], "out_of_memory")]
    assert dominating_failure(cells[(8, 16, 1.0e-4)], failed) is failed[0]
    assert dominating_failure(cells[(2, 16, 1.0e-4)], failed) is failed[0]
    assert dominating_failure(cells[(8, 2, 1.0e-4)], failed) is None  # smaller chunk
    assert dominating_failure(cells[(8, 16, 2.0e-4)], failed) is None  # another lr


def test_the_reason_of_a_probed_trial(tmp_path: Path) -> None:
    sweep = load_sweep(_sweep_file(tmp_path))
    cell = probe_cells(sweep)[0]
    probe = CellProbe(
        cell,
        "out_of_memory",
        train_peak_mb=1234.0,
        oom_mb=1234.0,
        detail="train step, host: 1234 MB over the 1000 MB cap",
    )
    attrs = probed_attrs(probe, probed_outcome(probe, sweep, current_device(sweep)))
    assert attrs["reason"] == (
        "pruned: out-of-memory (probed) at batch 8, chunk 16: "
        "train step, host: 1234 MB over the 1000 MB cap"
    )
    assert attrs["out_of_memory"] is True and attrs["probed"] is True
    assert attrs["oom_kind"] == "probed"  # a typed outcome: final on this hardware only
    assert attrs["peak_host_mb"] == 1234.0 and attrs["memory_cap_mb"] == 1000


@pytest.mark.slow
def test_run_probe_prunes_the_cell_over_the_cap_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vtd.cli import main

    # Two cells, to stay within the test timeout on a loaded machine: three probe processes
    # (the big cell's training step fails, so its evaluation step is not run) and one trial.
    path = _sweep_file(tmp_path, chunks=(16,))
    assert main(["run", str(path), "--probe"]) == 0
    out = capsys.readouterr().out
    print(out)  # the probe's table, with its figures, for the record (pytest -s)
    verdicts = {
        (int(batch), int(chunk)): verdict.strip()
        for batch, chunk, verdict in re.findall(
            r"batch_size=(\d+), chunk_size=(\d+)\s*│\s*([^│]+)│", out
        )
    }
    assert verdicts == {(8, 16): "no: out of memory", (2, 16): "yes"}
    assert re.search(r"train step, host: \d+ MB over the 1000 MB cap", out)
    sweep = load_sweep(path)
    from vtd.sweep.store.study import open_sweep_study

    trials = open_sweep_study(sweep, create=False).study.get_trials(deepcopy=False)
    by_cell = {(t.user_attrs["batch_size"], t.user_attrs["chunk_size"]): t for t in trials}
    assert len(trials) == 2
    big, small = by_cell[(8, 16)], by_cell[(2, 16)]
    assert big.state == TrialState.PRUNED
    assert big.user_attrs["reason"].startswith("pruned: out-of-memory (probed) at batch 8")
    assert big.user_attrs["out_of_memory"] and big.user_attrs["probed"]
    assert big.user_attrs["peak_host_mb"] > CAP_MB
    # no full trial started for it: no trial folder, no MLflow run, not claimed by a worker
    assert not (sweep.trials_dir / str(big.number)).exists()
    assert "mlflow_run_id" not in big.user_attrs and "worker" not in big.user_attrs
    assert small.state == TrialState.COMPLETE, small.user_attrs.get("reason")
    assert small.user_attrs["peak_host_mb"] < CAP_MB
    assert (sweep.trials_dir / str(small.number) / "trial.log").is_file()


@pytest.mark.slow
def test_run_probe_runs_on_the_first_gpu_of_gpus(tmp_path: Path) -> None:
    # No GPU here: the steps run on the CPU; what is checked is the pin the probe's processes
    # saw (they log it), the first of --gpus, as a worker pinned to that GPU would run.
    from vtd.cli import main

    path = write_sweep(
        tmp_path, sweep_yaml("probe-gpu", {"batch_size": [2], "chunk_size": [2]}, demo=demo_yaml(3))
    )
    assert main(["run", str(path), "--probe", "--gpus", "5,6"]) == 0
    sweep = load_sweep(path)
    for kind in ("train", "evaluate"):
        log = (sweep.study_dir / "probe" / "0" / f"{kind}.log").read_text()
        assert re.findall(r"CUDA_VISIBLE_DEVICES=(\S+)\)", log) == ["5"], log
