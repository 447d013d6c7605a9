"""A run's checkpoints on disk: the authors' format with a JSON sidecar of config and metrics.

The best checkpoint of a `best_last` run is, when an epoch improves, the very file just saved
as `last.pt`: a hard link (a copy where links are not allowed) instead of a second
serialisation of every weight (400 MB for the full model). `last.pt` is replaced by a rename
on the next save, so the linked `best.pt` keeps its content.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from torch import nn

from vtd.model import save_checkpoint
from vtd.train.config import TrainConfig
from vtd.train.records import EpochRecord


def save_epoch(model: nn.Module, path: Path, record: EpochRecord, config: TrainConfig) -> Path:
    """`model`'s checkpoint at `path` and its sidecar (`path` with `.json`)."""
    save_checkpoint(model, path)
    sidecar = {
        "epoch": record.epoch,
        "config": config.model_dump(mode="json"),
        "metrics": record.to_dict(),
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2, default=str))
    return path


def same_checkpoint(saved: Path, path: Path) -> Path:
    """`saved` also at `path` (a hard link, replacing what was there atomically), with a
    copy of its sidecar (sidecars are rewritten in place)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        temporary.hardlink_to(saved)
    except OSError:  # a file system without hard links
        shutil.copy2(saved, temporary)
    temporary.replace(path)
    shutil.copy2(saved.with_suffix(".json"), path.with_suffix(".json"))
    return path
