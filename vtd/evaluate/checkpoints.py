"""Evaluate saved checkpoints: one file, or every epoch's file in a folder (multi-epoch)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from vtd.data import Clip
from vtd.evaluate.loop import EvaluationData, evaluate
from vtd.host_allocator import keep_freed_memory
from vtd.model import VTD, ModelConfig, load_checkpoint

logger = logging.getLogger(__name__)


def _natural_key(path: Path) -> tuple[object, ...]:
    # epoch_2.pt before epoch_10.pt
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name))


def checkpoint_files(weights: Path) -> list[Path]:
    """`weights` itself, or the `.pt` files of the folder `weights` in epoch order."""
    if weights.is_dir():
        files = sorted(weights.glob("*.pt"), key=_natural_key)
        if not files:
            raise FileNotFoundError(f"{weights}: no .pt checkpoint in this folder")
        return files
    if not weights.exists():
        raise FileNotFoundError(f"{weights}: no such checkpoint")
    return [weights]


def sidecar(checkpoint: Path) -> dict[str, object]:
    """The JSON written beside a checkpoint by `vtd.train` (empty for the authors' files)."""
    path = checkpoint.with_suffix(".json")
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None


def model_config_for(written: dict[str, object], default: ModelConfig) -> ModelConfig:
    """The model config a checkpoint was trained with (from its sidecar), else `default`."""
    config = written.get("config")
    if isinstance(config, dict) and isinstance(config.get("model"), dict):
        return ModelConfig(**config["model"])
    return default


def evaluate_checkpoints(
    weights: Path,
    clips: Sequence[Clip],
    *,
    model: ModelConfig | None = None,
    batch_size: int = 4,
    chunk_size: int = 3,
    device: str = "cpu",
    num_workers: int = 0,
) -> pd.DataFrame:
    """One row per checkpoint (file or folder of epoch files) with the published metrics."""
    keep_freed_memory()
    data = EvaluationData(
        clips, batch_size=batch_size, chunk_size=chunk_size, num_workers=num_workers
    )
    rows = []
    for path in checkpoint_files(weights):
        written = sidecar(path)
        network = VTD(model_config_for(written, model or ModelConfig()))
        load_checkpoint(network, path)
        result = evaluate(network.to(device), data, device=torch.device(device))
        epoch = written.get("epoch")
        rows.append({"checkpoint": path.name, "epoch": epoch, **asdict(result.metrics)})
        logger.info("%s: AUC %.4f dist %.4f", path.name, result.metrics.auc, result.metrics.dist)
    return pd.DataFrame(rows)
