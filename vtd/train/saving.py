"""A run's checkpoints on disk: the authors' format with a JSON sidecar of config and metrics.

The best checkpoint of a `best_last` run is, when an epoch improves, the very file just saved
as `last.pt` (`vtd.file_links.link_or_copy`: a hard link, a copy where links are not
allowed) instead of a second serialisation of every weight (400 MB for the full model).
`last.pt` is replaced by a rename on the next save, so the linked `best.pt` keeps its
content.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from torch import nn

from vtd.file_links import link_or_copy
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
    """`saved` also at `path` (a link, else a copy), with a copy of its sidecar (sidecars are
    rewritten in place)."""
    link_or_copy(saved, path)
    shutil.copy2(saved.with_suffix(".json"), path.with_suffix(".json"))
    return path
