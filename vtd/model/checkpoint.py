"""Checkpoints in the authors' format, ``{'model': state_dict}``.

Loading is partial, like the authors' ``model_dict.update(snapshot)``: keys the file lacks
keep their fresh values (the spatial ``initial_weights_for_temporal_training.pt`` has no
``convlstm_scene.*``), keys the model lacks are ignored. Unlike the authors' scripts we
say so: ``load_checkpoint`` returns a ``LoadReport`` and logs a one-line summary.
Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only,
never arbitrary pickled objects.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

_PREFIX = "module."  # what torch.nn.DataParallel adds to every key
_COUNTER_SUFFIX = "num_batches_tracked"  # BatchNorm counters: old checkpoints lack them
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since PyTorch 1.6 is a zip archive
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # torch colours parts of its messages


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint for this model; the message is one line."""


@dataclass(frozen=True)
class LoadReport:
    """What ``load_checkpoint`` did.

    - ``loaded``: number of model tensors set from the file.
    - ``fresh``: model tensors the file lacks, left at their fresh initialisation
      (BatchNorm ``num_batches_tracked`` counters excluded: see ``missing_counters``).
    - ``missing_counters``: ``num_batches_tracked`` counters the file lacks (harmless: the
      counters only matter for BatchNorm with ``momentum=None``).
    - ``unexpected``: keys of the file the model does not have (ignored).
    """

    path: Path
    loaded: int
    fresh: tuple[str, ...]
    missing_counters: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """Every model key the file lacks (``fresh`` plus ``missing_counters``)."""
        return self.fresh + self.missing_counters

    def summary(self) -> str:
        parts = [f"loaded {self.loaded} tensors from {self.path}"]
        if self.fresh:
            parts.append(f"{len(self.fresh)} left fresh ({_abbreviate(self.fresh)})")
        if self.missing_counters:
            parts.append(f"{len(self.missing_counters)} BatchNorm counters absent")
        if self.unexpected:
            parts.append(
                f"{len(self.unexpected)} unexpected ignored ({_abbreviate(self.unexpected)})"
            )
        return "; ".join(parts)


def _abbreviate(keys: tuple[str, ...], shown: int = 3) -> str:
    more = f", ... {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def _first_line(error: BaseException) -> str:
    text = _ANSI_ESCAPE.sub("", str(error)).strip()
    line = text.splitlines()[0].split(". ")[0] if text else ""
    if len(line) > 160:
        line = line[:157] + "..."
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def _describe_load_error(path: Path, error: BaseException) -> str:
    """Why ``torch.load`` could not read ``path``, in a few words."""
    with path.open("rb") as file:
        head = file.read(4)
    if not head:
        return "empty file"
    refused = _REFUSED_GLOBAL.search(str(error))
    if refused:
        return (
            f"holds a pickled {refused.group(1)}, refused by weights_only loading "
            "(a checkpoint holds tensors and plain containers only)"
        )
    if head == _ZIP_MAGIC or isinstance(error, EOFError) or "unexpected EOF" in str(error):
        return f"truncated or damaged checkpoint ({_first_line(error)})"
    if isinstance(error, pickle.UnpicklingError):
        return "not a PyTorch checkpoint (no readable pickle data)"
    return f"not a PyTorch checkpoint ({_first_line(error)})"


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The state dict of a checkpoint file, ``module.`` prefixes stripped; checked, not loaded.

    Accepts ``{'model': state_dict, ...}`` (the authors' format) or a bare state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types for a damaged or foreign file
        raise CheckpointError(f"{path}: {_describe_load_error(path, error)}") from error
    if not isinstance(payload, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict {{'model': state_dict}} or a state dict, "
            f"got {type(payload).__name__}"
        )
    if "model" in payload:
        state = payload["model"]
        if not isinstance(state, Mapping):
            raise CheckpointError(
                f"{path}: entry 'model' should be a state dict, got {type(state).__name__}"
            )
    else:
        state = payload
    result: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: state-dict key {key!r} is not a string")
        if not isinstance(value, Tensor):
            raise CheckpointError(
                f"{path}: key {key!r} holds a {type(value).__name__}, not a tensor"
            )
        name = key.removeprefix(_PREFIX)
        if name in result:
            raise CheckpointError(f"{path}: key {name!r} appears with and without '{_PREFIX}'")
        result[name] = value
    return result


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> LoadReport:
    """Load the tensors of ``path`` that the model has; report the rest.

    Values are copied into the model's own tensors (keeping the model's dtype and device).
    A tensor whose shape differs from the model's is an error naming file and key.
    """
    path = Path(path)
    snapshot = read_state_dict(path)
    own = model.state_dict()
    for key, value in snapshot.items():
        if key in own and value.shape != own[key].shape:
            raise CheckpointError(
                f"{path}: key {key!r} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(own[key].shape)}"
            )
    matched = {key: value for key, value in snapshot.items() if key in own}
    absent = [key for key in own if key not in snapshot]
    report = LoadReport(
        path=path,
        loaded=len(matched),
        fresh=tuple(k for k in absent if not k.endswith(_COUNTER_SUFFIX)),
        missing_counters=tuple(k for k in absent if k.endswith(_COUNTER_SUFFIX)),
        unexpected=tuple(key for key in snapshot if key not in own),
    )
    model.load_state_dict(matched, strict=False)
    logger.info(report.summary())
    return report


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``{'model': state_dict, **extra}`` atomically (a temporary file, then a rename).

    Tensors are saved on the CPU, so the authors' scripts (``torch.load(path)['model']``) and
    ``load_checkpoint`` read the file on any machine. ``extra`` must hold plain values
    (numbers, strings, lists, dicts, tensors) so that ``weights_only`` loading accepts it.
    """
    path = Path(path)
    payload: dict[str, Any] = {
        "model": {key: value.detach().cpu() for key, value in model.state_dict().items()}
    }
    if extra:
        if "model" in extra:
            raise ValueError("extra checkpoint entries must not be named 'model'")
        payload.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
