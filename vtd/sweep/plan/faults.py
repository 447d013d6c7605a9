"""Fault injection: real out-of-memory errors, crashes and kills inside chosen trials.

Off by default. A sweep file's `faults:` list makes matching trials fail in a chosen way at
a chosen epoch, so that tests (and users checking a new machine) see each outcome for real:

```yaml
faults:
  - {kind: cuda_oom, epoch: 1, when: {batch_size: ">= 8"}}   # PRUNED, out-of-memory (CUDA)
  - {kind: memory_cap, epoch: 0, when: {chunk_size: 4}}       # PRUNED, over memory_cap_mb
  - {kind: sigkill, epoch: 2, when: {initial_weights: fresh}} # FAILED, killed by SIGKILL
  - {kind: nan_loss, epoch: 1, when: {lr: 1.0e-3}}            # FAILED, non-finite loss
```
`epoch: 0` fires before training starts, `epoch: N` when epoch N has been trained and
evaluated (before it is reported); except `nan_loss`, which makes the loss of the first
training chunk of epoch N (at least 1) NaN, so that training itself must catch it. `when`
compares training settings of the trial (field paths, weights by name) with a value, or with
`>=`, `<=`, `>`, `<`, `==`, `!=` and a value.
This module is imported by trial processes: it needs neither optuna nor mlflow.
"""

from __future__ import annotations

import logging
import operator
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

logger = logging.getLogger(__name__)

FaultKind = Literal[
    "cuda_oom", "host_oom", "exception", "memory_cap", "sigkill", "exit", "nan_loss"
]
# Faults that happen inside training rather than between epochs (see `poison_loss`).
IN_TRAINING: frozenset[str] = frozenset({"nan_loss"})
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_ALLOCATION_STEP_BYTES = 64 << 20


class InjectedFault(RuntimeError):
    """The plain exception of `kind: exception`."""


class FaultConfig(BaseModel):
    """One injected fault; see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    epoch: int = Field(default=1, ge=0)
    when: dict[str, Any] = Field(default_factory=dict)
    exit_code: int = Field(default=3, ge=1, le=255)

    @model_validator(mode="after")
    def _in_training_from_epoch_1(self) -> FaultConfig:
        if self.kind in IN_TRAINING and self.epoch < 1:
            raise ValueError(f"{self.kind} happens while an epoch trains: epoch must be >= 1")
        return self

    def matches(self, settings: Mapping[str, Any]) -> bool:
        """Whether a trial with these settings (field paths -> values) gets this fault."""
        return all(_condition_holds(settings.get(key), test) for key, test in self.when.items())


def _literal(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _condition_holds(value: Any, test: Any) -> bool:
    compare: Callable[[Any, Any], bool] = operator.eq
    expected = test
    if isinstance(test, str):
        symbol = next((symbol for symbol in _OPERATORS if test.startswith(symbol)), None)
        if symbol is None:
            expected = _literal(test)
        else:
            compare, expected = _OPERATORS[symbol], _literal(test[len(symbol) :].strip())
    try:
        return bool(compare(value, expected))
    except TypeError:
        return False


def inject(fault: FaultConfig, epoch: int, memory_cap_mb: int | None) -> None:
    """Make `fault` happen now, for real (called inside the trial process)."""
    where = f"injected fault at epoch {epoch}"
    logger.warning("%s: %s", where, fault.kind)
    sys.stdout.flush()
    sys.stderr.flush()
    if fault.kind == "cuda_oom":
        import torch

        raise torch.OutOfMemoryError(
            f"CUDA out of memory. Tried to allocate 2.00 GiB ({where}; no memory was used)"
        )
    if fault.kind == "host_oom":
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
            f"memory: you tried to allocate 68719476736 bytes. Error code 12 ({where})"
        )
    if fault.kind == "exception":
        raise InjectedFault(where)
    if fault.kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault.kind == "exit":
        os._exit(fault.exit_code)
    if fault.kind == "memory_cap":
        _exceed_memory(memory_cap_mb)


def poison_loss(faults: tuple[FaultConfig, ...]) -> Callable[[int], None] | None:
    """Make the training loss NaN at the `nan_loss` faults' epochs, in this process only.

    Replaces `vtd.train.recipe.chunk_loss` (the trial process is forked for this one trial,
    so nothing else sees it) with one that multiplies the loss by NaN on the first chunk of a
    poisoned epoch, as a diverging run would. Returns the callback that tells it which epoch
    has ended (the next one is training), or None without such faults.
    """
    epochs = {fault.epoch for fault in faults if fault.kind == "nan_loss"}
    if not epochs:
        return None
    from vtd.loss import ChunkLoss
    from vtd.train import recipe

    honest = recipe.chunk_loss
    training = {"epoch": 1, "poisoned": False}

    def poisoned(*args: Any, **kwargs: Any) -> ChunkLoss:
        loss = honest(*args, **kwargs)
        if training["epoch"] in epochs and not training["poisoned"]:
            training["poisoned"] = True
            logger.warning("injected fault at epoch %d: nan_loss", training["epoch"])
            return ChunkLoss(*(part * float("nan") for part in loss))
        return loss

    def epoch_ended(epoch: int) -> None:
        training["epoch"], training["poisoned"] = epoch + 1, False

    recipe.chunk_loss = poisoned  # type: ignore[assignment]
    return epoch_ended


def _exceed_memory(memory_cap_mb: int | None) -> None:
    # Touch every page so that the memory is resident, as a leaking loader's would be.
    if memory_cap_mb is None:
        raise InjectedFault("memory_cap fault without a memory cap")
    held = []
    limit = (memory_cap_mb + 2048) << 20
    allocated = 0
    while allocated < limit:
        held.append(bytearray(b"\x01") * _ALLOCATION_STEP_BYTES)
        allocated += _ALLOCATION_STEP_BYTES
        time.sleep(0.02)
    time.sleep(10.0)  # the watchdog has had time to act
    raise InjectedFault(f"allocated {allocated >> 20} MB and the memory cap did not stop it")
