"""The sweep file's settings sections: how trials are chosen (`sampler`), pruned (`pruner`) and
judged (`objective`), how killed workers are found (`heartbeat`) and kernel OOM kills told
apart (`oom_evidence`). `config.SweepFile` holds them; each is checked on its own here."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vtd.evaluate.names import HIGHER_IS_BETTER, Direction, Metric, direction


class Strict(BaseModel):
    """A section of the sweep file: unknown keys rejected, frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Named(Strict):
    """A section chosen by `name`, that a name alone may stand for: `sampler: tpe` is short
    for `sampler: {name: tpe}`; the same for the pruner."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: object) -> object:
        return {"name": value} if isinstance(value, str) else value


class SamplerConfig(_Named):
    """How trials are chosen: every cell of a grid, TPE, or random sampling."""

    name: Literal["grid", "tpe", "random"] = "grid"
    seed: int = Field(default=0, description="seed of the TPE / random sampler")
    n_startup_trials: int | None = Field(
        default=None, ge=0, description="tpe only: random trials before TPE takes over"
    )

    @model_validator(mode="after")
    def _tpe_only(self) -> SamplerConfig:
        if self.n_startup_trials is not None and self.name != "tpe":
            raise ValueError(f"n_startup_trials is a tpe setting, not one of {self.name}")
        return self


_PRUNER_KEYS = {
    "none": set(),
    "median": {"n_startup_trials", "n_warmup_steps", "interval_steps"},
    "successive_halving": {"min_resource", "reduction_factor", "min_early_stopping_rate"},
}


class PrunerConfig(_Named):
    """Early stopping on the per-epoch objective (steps are epochs, 1-based), Optuna's names."""

    name: Literal["none", "median", "successive_halving"] = "none"
    n_startup_trials: int = Field(default=5, ge=0)
    n_warmup_steps: int = Field(default=0, ge=0, description="median: no pruning up to here")
    interval_steps: int = Field(default=1, ge=1)
    min_resource: int | Literal["auto"] = "auto"
    reduction_factor: int = Field(default=4, ge=2)
    min_early_stopping_rate: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _settings_of_this_pruner(self) -> PrunerConfig:
        foreign = sorted(self.model_fields_set - {"name"} - _PRUNER_KEYS[self.name])
        if foreign:
            raise ValueError(f"{', '.join(foreign)} is not a setting of the {self.name} pruner")
        return self


class ObjectiveConfig(Strict):
    """What a trial is judged by: a metric on a split, per epoch, reduced to one value."""

    metric: Metric = "auc"
    direction: Direction | None = Field(
        default=None, description="default: maximize auc / ap, minimize dist / loss"
    )
    split: Literal["validation", "test"] = Field(
        default="validation",
        description="test is allowed but optimistic: the result is flagged as such",
    )
    reduce: Literal["best", "last"] = Field(
        default="best", description="a trial's value: its best epoch or its last"
    )

    @model_validator(mode="after")
    def _direction_matches_metric(self) -> ObjectiveConfig:
        natural = direction(self.metric)
        if self.direction is not None and self.direction != natural:
            better = "higher" if HIGHER_IS_BETTER[self.metric] else "lower"
            raise ValueError(
                f"direction {self.direction} contradicts metric {self.metric} "
                f"({better} is better); leave direction out or set it to {natural}"
            )
        return self

    @property
    def resolved_direction(self) -> Direction:
        return direction(self.metric)

    @property
    def optimistic(self) -> bool:
        """True when selection reads the test split (flagged in every output)."""
        return self.split == "test"


class HeartbeatConfig(Strict):
    """How a dead worker's trial is noticed: Optuna heartbeats on every running trial."""

    interval_s: int = Field(default=10, ge=1, description="seconds between heartbeats")
    grace_s: int = Field(
        default=60,
        ge=2,
        description="a running trial with no heartbeat for this long is FAILED and queued again",
    )
    max_retry: int | None = Field(
        default=3, ge=0, description="queue a dead worker's trial again at most this often"
    )

    @model_validator(mode="after")
    def _grace_longer_than_interval(self) -> HeartbeatConfig:
        if self.grace_s < 2 * self.interval_s:
            raise ValueError(
                f"grace_s ({self.grace_s}) must be at least twice interval_s ({self.interval_s})"
            )
        return self


class OomEvidenceConfig(Strict):
    """Where a worker looks for evidence that the kernel's OOM killer ended a trial (see
    vtd.sweep.execute.oom_evidence); unset: the worker's own cgroup, /dev/kmsg, the machine's
    memory.
    Relative paths are relative to the sweep file."""

    memory_events: Path | None = Field(
        default=None, description="a cgroup v2 memory.events file (its oom_kill counter)"
    )
    kernel_log: Path | None = Field(default=None, description="a kernel log to search")
    memory_limit_mb: int | None = Field(
        default=None, gt=0, description="the memory limit a last sample is compared with"
    )
