"""Speed and GPU-readiness options (issue 13, items 3 and 4) that run on the CPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vtd.data import load_splits
from vtd.evaluate import EvaluationData, evaluate
from vtd.model import VTD, ModelConfig
from vtd.train import FineTuning, TrainConfig
from vtd.train.device import loader_workers

ROOT = Path(__file__).resolve().parent.parent
SMALL = ModelConfig(variant="small")


def config(data, tmp_path: Path, **overrides) -> TrainConfig:
    settings = {
        "data": data,
        "model": SMALL,
        "epochs": 1,
        "output_dir": tmp_path / "run",
        "checkpoints": "none",
    }
    return TrainConfig(**{**settings, **overrides})


def test_device_memory_cap_is_refused_on_the_cpu_in_one_line(tiny_demo_data, tmp_path):
    with pytest.raises(ValueError) as error:
        FineTuning(config(tiny_demo_data, tmp_path, device="cpu", device_memory_gb=8))
    message = str(error.value)
    assert "\n" not in message
    assert "device_memory_gb (8) caps CUDA memory" in message and "memory_cap_mb" in message
    with pytest.raises(ValueError, match="greater than 0"):
        config(tiny_demo_data, tmp_path, device_memory_gb=0)


def test_loader_workers_default_to_none_on_the_cpu_and_some_on_cuda():
    assert loader_workers(None, torch.device("cpu")) == 0
    assert 1 <= loader_workers(None, torch.device("cuda")) <= 4
    assert loader_workers(3, torch.device("cpu")) == 3
    assert loader_workers(0, torch.device("cuda")) == 0


def test_channels_last_evaluates_like_the_default_layout(tiny_demo_data):
    clips = load_splits(tiny_demo_data).test[:2]
    torch.manual_seed(0)
    model = VTD(SMALL).eval()
    plain = evaluate(model, EvaluationData(clips, batch_size=2, chunk_size=3)).metrics
    model = model.to(memory_format=torch.channels_last)
    data = EvaluationData(clips, batch_size=2, chunk_size=3, channels_last=True)
    fast = evaluate(model, data).metrics
    assert abs(fast.auc - plain.auc) < 1e-4 and abs(fast.dist - plain.dist) < 1e-4
    assert fast.frames == plain.frames


def test_a_channels_last_run_trains(tiny_demo_data, tmp_path):
    run = FineTuning(config(tiny_demo_data, tmp_path, channels_last=True, device="cpu"))
    conv = run.model.conv1_scene.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    record = run.train().records[0]
    run.close()
    assert torch.isfinite(torch.tensor(record.train_loss))
    assert 0 <= record.validation.auc <= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_check_says_there_is_no_cuda_and_exits_0():
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu_check.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "no CUDA device on this machine" in done.stdout
