"""How an outcome reads in words: the one place that says it (status, report, plots, MLflow).

`words` is an outcome without its state, `describe` a trial's reason (its state, then its
words), `short_words` a failed or pruned outcome in a table cell, `oom_figure` what made a trial
run out of memory. An injected outcome reads "(injected)" in each.
"""

from __future__ import annotations

import dataclasses

from vtd.sweep.store.record import (
    MB,
    Complete,
    DuplicateOf,
    Failed,
    Interrupted,
    Outcome,
    OutOfMemory,
    StoppedByPruner,
    size_text,
    state_of,
)


def _mb(value: float | None) -> str:
    return "?" if value is None else f"{float(value) / MB:.0f} MB"


_OOM_WHERE = {
    "cuda": "CUDA",
    "host": "host",
    "cap": "host",
    "kernel_killed": "host, killed by the kernel",
    "probed": "probed",
}


def oom_figure(outcome: OutOfMemory) -> str:
    """What made a trial run out of memory, in a few words (the figure that triggered it)."""
    injected = " (injected)" if outcome.injected else ""
    if outcome.kind == "dominated_by":
        return f"dominated by batch {outcome.batch_size}, chunk {outcome.chunk_size}{injected}"
    where = _OOM_WHERE[outcome.kind]
    if outcome.kind == "cap" and outcome.limit_bytes is not None:
        over = f"{size_text(outcome.peak_bytes)} > " if outcome.peak_bytes else ""
        return f"host memory {over}cap {size_text(outcome.limit_bytes)}{injected}"
    if outcome.kind == "kernel_killed":
        used = f" {size_text(outcome.peak_bytes)}" if outcome.peak_bytes else ""
        limit = f" of {size_text(outcome.limit_bytes)}" if outcome.limit_bytes else ""
        return f"host memory{used}{limit}, killed by the kernel{injected}"
    if outcome.requested_bytes is not None:
        return f"{where}: tried to allocate {size_text(outcome.requested_bytes)}{injected}"
    if outcome.peak_bytes is not None:
        return f"{where}, peak {size_text(outcome.peak_bytes)}{injected}"
    return f"{where}{injected}"


def words(outcome: Outcome) -> str:
    """How an outcome reads, without its state ("" for a plain complete trial)."""
    injected = " (injected)" if getattr(outcome, "injected", False) else ""
    if isinstance(outcome, Complete):
        return ""
    if isinstance(outcome, StoppedByPruner):
        return f"stopped by the {outcome.pruner} at epoch {outcome.epoch}"
    if isinstance(outcome, OutOfMemory):
        at = f"batch {outcome.batch_size}, chunk {outcome.chunk_size}"
        if outcome.kind == "dominated_by":
            trial = "" if outcome.dominated_by is None else f" (trial {outcome.dominated_by})"
            return f"dominated by out-of-memory at {at}{trial}{injected}"
        where = _OOM_WHERE[outcome.kind]
        if outcome.kind == "cap":
            return (
                f"out-of-memory (host): {_mb(outcome.peak_bytes)} over the "
                f"{_mb(outcome.limit_bytes)} cap at {at}{injected}"
            )
        if outcome.kind == "kernel_killed":
            return (
                f"out-of-memory ({where}) at {at}{injected}: SIGKILL with "
                f"{size_text(outcome.peak_bytes)} resident, "
                f"limit {size_text(outcome.limit_bytes)}; "
                f"{outcome.message}"
            )
        first = (outcome.message.strip().splitlines() or [""])[0][:300]
        return f"out-of-memory ({where}) at {at}{injected}: {first}".rstrip(": ")
    if isinstance(outcome, DuplicateOf):
        if outcome.state == "COMPLETE":
            return f"same configuration and seed as trial {outcome.trial}: its value, not run again"
        original = outcome.original
        return f"as trial {outcome.trial}, not run again: {original or 'pruned'}"
    if isinstance(outcome, Failed):
        if outcome.error_type is not None:
            first = (outcome.message.strip().splitlines() or [""])[0][:300]
            return f"{outcome.error_type}: {first}{injected}"
        peak = f", last peak {size_text(outcome.peak_bytes)}" if outcome.peak_bytes else ""
        if outcome.signal is not None:
            return (
                f"trial process killed by {outcome.signal}{injected} "
                f"(no evidence of an out-of-memory kill{peak})"
            )
        if outcome.exit_code is not None:
            return (
                f"trial process exited with code {outcome.exit_code} without a result"
                f"{injected}{peak}"
            )
        return f"{outcome.message}{injected}"
    if isinstance(outcome, Interrupted):
        return "interrupted: queued again by the next run"
    return f"worker {outcome.worker} lost; queued again"


_STATE_WORDS = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def describe(outcome: Outcome) -> str:
    """How an outcome reads as a trial's reason: its state in words, then `words` ("" for a
    plain complete trial)."""
    text = words(outcome)
    return f"{_STATE_WORDS[state_of(outcome)]}: {text}" if text else ""


def short_words(outcome: Outcome, width: int = 60) -> str:
    """A failed or pruned outcome in at most `width` characters (tables, figure cells); an
    injected one keeps its "(injected)" however short."""
    injected = getattr(outcome, "injected", False)
    plain = dataclasses.replace(outcome, injected=False) if injected else outcome  # type: ignore[type-var]
    if isinstance(plain, OutOfMemory):
        text = oom_figure(plain)
    elif isinstance(plain, Failed) and plain.error_type is None and plain.signal is not None:
        text = f"killed by {plain.signal}"
    elif isinstance(plain, Failed) and plain.error_type is None and plain.exit_code is not None:
        text = f"exited with code {plain.exit_code}"
    else:
        text = words(plain)
        text = text.splitlines()[0] if text else plain.type
    suffix = " (injected)" if injected else ""
    room = width - len(suffix)
    return (text if len(text) <= room else text[: room - 1] + "…") + suffix
