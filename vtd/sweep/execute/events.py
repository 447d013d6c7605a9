"""What the running machinery tells whoever shows it: notices and the run's plan.

Kept apart from `session` (which makes them) so that `reporting.console` (which shows them)
and `pool` (whose worker processes send notices back) import neither the session nor each
other through it: this module imports nothing of the sweep at run time. The trial events
(`TrialStarted`, `EpochEnded`, `TrialEnded`) are what a worker tells of its trials; `ignore`
is the sink of a caller that shows nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an annotation only: importing the study would load optuna
    from vtd.sweep.store.study import QueuedTrial


@dataclass(frozen=True)
class Notice:
    """A line for the user about preparation (not about a trial)."""

    message: str


@dataclass(frozen=True)
class Plan:
    """What a run would do: trials queued now, already waiting, and still to sample."""

    queued: list[QueuedTrial]
    waiting: int
    to_sample: int
    finished: int
    # Out-of-memory trials (and those they dominated) run again: other hardware, or asked.
    out_of_memory_again: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return len(self.queued) + self.waiting + self.to_sample


@dataclass(frozen=True)
class TrialStarted:
    number: int
    cell: str
    seed: int
    epochs: int


@dataclass(frozen=True)
class EpochEnded:
    number: int
    epoch: int
    epochs: int
    metrics: dict[str, float]
    objective: float | None


@dataclass(frozen=True)
class TrialEnded:
    number: int
    cell: str
    seed: int
    state: str  # COMPLETE | PRUNED | FAIL (Optuna's names)
    value: float | None
    reason: str
    seconds: float
    ran: bool
    interrupted: bool = False


Event = TrialStarted | EpochEnded | TrialEnded
EventSink = Callable[[Event], None]


def ignore(_event: object) -> None:
    """An event sink that shows nothing."""
