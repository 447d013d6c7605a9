"""What makes two trials the same: hashes of the resolved training configuration.

- `config_hash`: the whole resolved TrainConfig (seed included, output folder excluded);
  two trials with the same config_hash are the same run, so one of them is enough.
- `cell_hash`: the same without the seed: the cell (configuration) that repeats share.
- `context_hash`: also without batch and chunk size: cells that differ only in those two
  are compared for out-of-memory dominance.

Paths are written relative to the sweep file's folder and weights by their name, so the
hashes do not change when the project is checked out somewhere else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtd.train.config import TrainConfig

MEMORY_FIELDS = ("batch_size", "chunk_size")


class MemorySizes:
    """Batch and chunk size of `config` (`MEMORY_FIELDS`): what a trial's memory grows with,
    for the dataclasses that carry a resolved configuration."""

    config: TrainConfig

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size


@dataclass(frozen=True)
class TrialIdentity:
    config_hash: str
    cell_hash: str
    context_hash: str


def digest(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def portable_path(path: Path, folder: Path) -> str:
    """`path` relative to `folder` when inside it (POSIX form), else absolute."""
    path = path.absolute()
    return path.relative_to(folder).as_posix() if path.is_relative_to(folder) else str(path)


def canonical_config(config: TrainConfig, weights_identity: str, folder: Path) -> dict[str, Any]:
    """The configuration as hashed: JSON values, portable paths, no output folder."""
    content = config.model_dump(mode="json", exclude={"output_dir", "eval_cache_dir"})
    content["initial_weights"] = weights_identity
    content["data_dir"] = portable_path(config.data_dir, folder)
    return content


def identify(config: TrainConfig, weights_identity: str, folder: Path) -> TrialIdentity:
    content = canonical_config(config, weights_identity, folder)
    cell = {key: value for key, value in content.items() if key != "seed"}
    context = {key: value for key, value in cell.items() if key not in MEMORY_FIELDS}
    return TrialIdentity(
        config_hash=digest(content), cell_hash=digest(cell), context_hash=digest(context)
    )
