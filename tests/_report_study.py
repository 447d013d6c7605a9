"""One real study with every outcome, for the plot and report tests (and their fixtures).

A 2 x 2 grid (batch size 1, 2 x chunk size 2, 4) x initial weights (fresh, a checkpoint
file) x 2 repeats of the small model, 2 epochs on a tiny demo data set, real trial processes:

- batch 2, chunk 2: CUDA out-of-memory injected before training (PRUNED, out of memory),
  which dominates batch 2, chunk 4 (PRUNED without running) and its second seeds;
- batch 1, chunk 4, fresh weights: an exception before training (FAILED); with the
  checkpoint, seed 0 trains and seed 1 is killed in its second epoch (FAILED, with an
  epoch in MLflow that no plot may show): a cell with curves, a failed line, a failed seed;
- batch 1, chunk 2: both weights train, two seeds each (COMPLETE, repeats).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from _sweepfiles import sweep_yaml

from vtd.model import VTD, ModelConfig, save_checkpoint
from vtd.sweep.plan.config import Sweep, load_sweep

STUDY = "report-test"
SWEEP = sweep_yaml(
    STUDY,
    {"batch_size": [1, 2], "chunk_size": [2, 4], "initial_weights": ["fresh", "weights/other.pt"]},
    repeats=2,
    training={"epochs": 2},
    faults=[
        {"kind": "cuda_oom", "epoch": 0, "when": {"batch_size": 2, "chunk_size": 2}},
        {
            "kind": "exception",
            "epoch": 0,
            "when": {"batch_size": 1, "chunk_size": 4, "initial_weights": "fresh"},
        },
        {"kind": "sigkill", "epoch": 2, "when": {"batch_size": 1, "chunk_size": 4, "seed": 1}},
    ],
)


@dataclass(frozen=True)
class BuiltStudy:
    sweep_path: Path
    parent_run_id: str


def write_small_checkpoint(path: Path, seed: int, drop_prefix: str | None = None) -> Path:
    """A small-model checkpoint in the authors' format ({'model': state_dict})."""
    torch.manual_seed(seed)
    model = VTD(ModelConfig(variant="small"))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, path)
    if drop_prefix is not None:
        # Like the authors' spatial checkpoint, which has no ConvLSTM weights.
        content = torch.load(path, map_location="cpu", weights_only=True)
        content["model"] = {
            key: value for key, value in content["model"].items() if not key.startswith(drop_prefix)
        }
        torch.save(content, path)
    return path


def build_report_study(folder: Path) -> BuiltStudy:
    """The study above under `folder` (run once; later calls read what the first made)."""
    # The plot and the report tests' module fixtures both call this, one after the other in
    # one pytest process (its base temp folder): the second reads what the first wrote.
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "built.json"
    if not done.is_file():
        from vtd.sweep.execute.session import run_sweep

        path = folder / "sweep.yaml"
        path.write_text(SWEEP)
        write_small_checkpoint(folder / "weights" / "other.pt", seed=123)
        outcome = run_sweep(load_sweep(path))
        assert not outcome.interrupted and len(outcome.ended) == 16
        done.write_text(json.dumps({"parent_run_id": outcome.parent_run_id}))
    built = json.loads(done.read_text())
    return BuiltStudy(sweep_path=folder / "sweep.yaml", parent_run_id=built["parent_run_id"])


def mlflow_metrics(tracking_uri: str, study: str) -> dict[int, dict[str, dict[int, float]]]:
    """Straight from MLflow: trial number -> metric -> epoch -> value."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(study)
    assert experiment is not None
    metrics: dict[int, dict[str, dict[int, float]]] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        if "optuna_trial" not in run.data.tags:
            continue
        number = int(run.data.tags["optuna_trial"])
        metrics[number] = {
            key: {m.step: m.value for m in client.get_metric_history(run.info.run_id, key)}
            for key in run.data.metrics
        }
    return metrics


# The plot and the report tests' fixtures, imported by both modules (by their functions' names):
# the study, its sweep file and its MLflow metrics.
@pytest.fixture(scope="module", name="built")
def built_fixture(tmp_path_factory: pytest.TempPathFactory) -> BuiltStudy:
    return build_report_study(tmp_path_factory.getbasetemp() / "report-study")


@pytest.fixture(scope="module", name="sweep")
def sweep_fixture(built: BuiltStudy) -> Sweep:
    return load_sweep(built.sweep_path)


@pytest.fixture(scope="module", name="metrics")
def metrics_fixture(sweep: Sweep) -> dict[int, dict[str, dict[int, float]]]:
    return mlflow_metrics(sweep.tracking_uri, sweep.study_name)
