"""One typed record per trial: who it is (`TrialRecord`) and how it ended (`Outcome`).

This module is the only one that writes an outcome to Optuna or reads it back: a trial's
outcome is the user attribute `outcome`, a JSON object tagged by `type`. Workers decide it
(`vtd.sweep.store.outcome`, from what the trial process reported); status, report, plots and
MLflow tags read its fields, and `vtd.sweep.store.words` is the one place that says how an
outcome reads in words. The flat attributes that tables show (`reason`, `out_of_memory`,
`signal` ...) are all derived here from the outcome (`outcome_attrs`), never parsed back.

Outcomes:
- `Complete`: every epoch trained (`best_epoch`: the one the objective picked);
- `StoppedByPruner(epoch)`: the pruner ended it after that epoch;
- `OutOfMemory(kind)`: `cuda`, `host` (an allocator error), `cap` (over `memory_cap_mb`),
  `kernel_killed` (the kernel's OOM killer), `dominated_by` (not run: a smaller cell ran out)
  or `probed` (found not to fit by a probe), with the `Device` it happened on, the bytes asked
  for, the peak and the limit;
- `DuplicateOf(trial)`: not run, the same configuration and seed as another trial;
- `Failed`: an error type and message, or the exit code or signal; the log's tail;
- `Interrupted`: Ctrl-C, queued again by the next run;
- `Lost(worker)`: its worker died, another process failed it and queued it again.
An outcome caused by an injected fault (`vtd.sweep.plan.faults`) has `injected=True` and reads
"(injected)" wherever it is shown.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

OUTCOME_ATTR = "outcome"
OomKind = Literal["cuda", "host", "cap", "kernel_killed", "dominated_by", "probed"]
OriginKind = Literal["queued", "sampled", "retry", "duplicate"]
OptunaState = Literal["COMPLETE", "PRUNED", "FAIL"]
MB = 2**20


def _close(a: int | None, b: int | None, tolerance: float = 0.02) -> bool:
    if a is None or b is None:
        return a == b
    return abs(a - b) <= tolerance * max(a, b)


def readablesize_text(value: float | None) -> str:
    """Bytes in MB, or in GB from 1 GB on ("?" when unknown)."""
    if value is None:
        return "?"
    mb = float(value) / MB
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def size_text(value: float | None) -> str:
    """Bytes in MB, or in GB from 1 GB on ("?" when unknown)."""
    if value is None:
        return "?"
    mb = float(value) / MB
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


@dataclass(frozen=True)
class Device:
    """Where a trial ran: its GPU (name, total bytes) if any, the host's memory and the cap."""

    gpu_name: str | None = None
    gpu_total_bytes: int | None = None
    host_total_bytes: int | None = None
    cap_bytes: int | None = None

    def same_hardware(self, other: Device) -> bool:
        """Whether an out-of-memory here says anything about `other`: same GPU, same host
        memory, and a cap no larger there than here."""
        if not self.same_gpu(other):
            return False
        if not _close(self.host_total_bytes, other.host_total_bytes):
            return False
        if self.cap_bytes is None:  # the machine was the limit: any cap there is smaller
            return True
        return other.cap_bytes is not None and other.cap_bytes <= self.cap_bytes

    def same_gpu(self, other: Device) -> bool:
        """The same GPU model and memory. Totals are compared within 2%: the trial process
        reads them from CUDA, the planner from `nvidia-smi`, which may round differently."""
        return self.gpu_name == other.gpu_name and _close(
            self.gpu_total_bytes, other.gpu_total_bytes
        )

    def words(self) -> str:
        parts = []
        if self.gpu_name:
            total = f" {size_text(self.gpu_total_bytes)}" if self.gpu_total_bytes else ""
            parts.append(f"{self.gpu_name}{total}")
        if self.host_total_bytes:
            parts.append(f"host {size_text(self.host_total_bytes)}")
        if self.cap_bytes:
            parts.append(f"cap {size_text(self.cap_bytes)}")
        return ", ".join(parts) or "unknown device"


@dataclass(frozen=True)
class Complete:
    best_epoch: int
    type: Literal["complete"] = "complete"


@dataclass(frozen=True)
class StoppedByPruner:
    epoch: int
    pruner: str = "pruner"
    best_epoch: int | None = None
    type: Literal["stopped"] = "stopped"


@dataclass(frozen=True)
class OutOfMemory:
    kind: OomKind
    device: Device | None = None
    requested_bytes: int | None = None
    peak_bytes: int | None = None
    limit_bytes: int | None = None
    dominated_by: int | None = None
    batch_size: int | None = None
    chunk_size: int | None = None
    message: str = ""
    injected: bool = False
    type: Literal["out_of_memory"] = "out_of_memory"

    @property
    def ran_out(self) -> bool:
        """Ran out itself (not pruned because another trial did)."""
        return self.kind != "dominated_by"

    def final_on(self, device: Device, *, retry: bool = False) -> bool:
        """Whether this out-of-memory still holds on `device`: only on the same hardware (a
        CUDA one: the same GPU; a host one: the same host memory and no larger cap), and not
        when out-of-memory trials are retried on request. One recorded without its device
        holds unless retried."""
        if retry:
            return False
        if self.device is None or self.kind == "dominated_by":
            return True
        if self.kind == "cuda":
            return self.device.same_gpu(device)
        return self.device.same_hardware(
            dataclasses.replace(
                device, gpu_name=self.device.gpu_name, gpu_total_bytes=self.device.gpu_total_bytes
            )
        )


@dataclass(frozen=True)
class DuplicateOf:
    """Not run: `trial` has the same configuration and seed; its state (and value) copied."""

    trial: int
    state: OptunaState = "COMPLETE"
    original: str = ""  # the original's outcome in words
    type: Literal["duplicate"] = "duplicate"


@dataclass(frozen=True)
class Failed:
    error_type: str | None = None
    message: str = ""
    exit_code: int | None = None
    signal: str | None = None
    log_tail: str = ""
    peak_bytes: int | None = None
    injected: bool = False
    type: Literal["failed"] = "failed"


@dataclass(frozen=True)
class Interrupted:
    type: Literal["interrupted"] = "interrupted"


@dataclass(frozen=True)
class Lost:
    worker: str
    type: Literal["lost"] = "lost"


Outcome = Complete | StoppedByPruner | OutOfMemory | DuplicateOf | Failed | Interrupted | Lost
_TYPES: dict[str, type[Any]] = {
    cls.type: cls  # type: ignore[attr-defined]
    for cls in (Complete, StoppedByPruner, OutOfMemory, DuplicateOf, Failed, Interrupted, Lost)
}


@dataclass(frozen=True)
class Origin:
    """Why a trial exists: queued by the planner, sampled by a worker, or a retry / copy of
    another trial (`of`)."""

    kind: OriginKind
    of: int | None = None

    def words(self) -> str:
        return self.kind if self.of is None else f"{self.kind} of trial {self.of}"


@dataclass(frozen=True)
class TrialRecord:
    """Who a trial is: its identity, parameters, repeat, seed and origin."""

    number: int
    config_hash: str
    cell_hash: str
    params: dict[str, Any]
    repeat: int
    seed: int
    origin: Origin

    @classmethod
    def from_attrs(
        cls, number: int, params: Mapping[str, Any], attrs: Mapping[str, Any]
    ) -> TrialRecord:
        return cls(
            number=number,
            config_hash=str(attrs.get("config_hash", "")),
            cell_hash=str(attrs.get("cell_hash", "")),
            params=dict(params),
            repeat=int(attrs.get("repeat", 0)),
            seed=int(attrs.get("seed", 0)),
            origin=origin_of(attrs),
        )


def origin_of(attrs: Mapping[str, Any]) -> Origin:
    """A trial's origin from its attributes (the planner's `origin` and `retry_of`)."""
    if attrs.get("duplicate_of") is not None:
        return Origin("duplicate", int(attrs["duplicate_of"]))
    retry_of = attrs.get("retry_of")
    if retry_of:
        return Origin("retry", int(retry_of[-1]))
    if attrs.get("origin") == "sampled":
        return Origin("sampled")
    return Origin("queued")


# --- Optuna ---------------------------------------------------------------------------------
def state_of(outcome: Outcome) -> OptunaState:
    """The Optuna state an outcome ends its trial in."""
    if isinstance(outcome, Complete):
        return "COMPLETE"
    if isinstance(outcome, DuplicateOf):
        return outcome.state
    if isinstance(outcome, StoppedByPruner | OutOfMemory):
        return "PRUNED"
    return "FAIL"


def to_json(outcome: Outcome) -> str:
    return json.dumps(dataclasses.asdict(outcome), sort_keys=True)


def from_json(text: str | Mapping[str, Any]) -> Outcome:
    """An outcome from its JSON (or the parsed object); ValueError for an unknown one."""
    data = dict(json.loads(text) if isinstance(text, str) else text)
    cls = _TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown trial outcome type {data.get('type')!r}")
    if cls is OutOfMemory and isinstance(data.get("device"), Mapping):
        data["device"] = Device(**data["device"])
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


def read_outcome(attrs: Mapping[str, Any]) -> Outcome | None:
    """A trial's outcome from its user attributes; None for one that has not ended (or was
    recorded before outcomes were typed, or failed as lost by the heartbeat sweep)."""
    text = attrs.get(OUTCOME_ATTR)
    if text is None:
        if attrs.get("worker_lost"):
            return Lost(str(attrs.get("worker", "(unknown)")))
        return None
    return from_json(text)


def outcome_attrs(outcome: Outcome, words: str) -> dict[str, Any]:
    """Every user attribute an outcome sets: the record itself, and the flat columns tables
    and older readers show (all derived from the record)."""
    attrs: dict[str, Any] = {OUTCOME_ATTR: to_json(outcome), "reason": words}
    if isinstance(outcome, Complete | StoppedByPruner) and outcome.best_epoch is not None:
        attrs["best_epoch"] = outcome.best_epoch
    if isinstance(outcome, StoppedByPruner):
        attrs["pruned_at_epoch"] = outcome.epoch
    if isinstance(outcome, OutOfMemory):
        attrs["out_of_memory"] = outcome.ran_out
        attrs["oom_dominated"] = not outcome.ran_out
        attrs["oom_kind"] = outcome.kind
        if outcome.dominated_by is not None:
            attrs["dominated_by"] = outcome.dominated_by
        if outcome.device is not None and outcome.device.cap_bytes is not None:
            attrs["memory_cap_mb"] = round(outcome.device.cap_bytes / MB)
    if isinstance(outcome, DuplicateOf):
        attrs["duplicate_of"] = outcome.trial
    if isinstance(outcome, Failed):
        for key in ("error_type", "exit_code", "signal"):
            if getattr(outcome, key) is not None:
                attrs[key] = getattr(outcome, key)
        if outcome.message:
            attrs["error_message"] = outcome.message
        attrs["log_tail"] = outcome.log_tail
    if isinstance(outcome, Interrupted | Lost):
        attrs["interrupted"] = True
    if getattr(outcome, "injected", False):
        attrs["injected"] = True
    return attrs
