"""Which grid cells fit in memory, learnt in seconds a cell (`vtd-sweep probe`, `run --probe`).

For each cell of the sweep's grid, largest batch x chunk first: one training step on the
longest training window (every clip of the batch alive, `batch_size x chunk_size` frames),
then one evaluation step (the largest evaluation chunk), each in its own trial process
started by the worker's `TrialLauncher`: the same fork server, device, per-trial memory cap
(`memory_cap_mb`) and watchdog as a full trial, so a cell that does not fit fails here the way
it would after hours. A cell dominated by one that did not fit (batch and chunk both at least
its, all else equal) is not probed; in this order that never happens within one grid (such a
cell is larger, so probed before), but it keeps the probe from ever running a cell known to
fail whatever the order. Initial weights are left out (a fresh model): they
change no tensor's size, and the demo's pretrained weights need not be trained first.

`run --probe` records the trials of the cells that do not fit as PRUNED (out of memory,
probed) before any full trial starts; the workers then skip the cells they dominate, as they
do after a real out-of-memory trial (`vtd.sweep.store.queue.find_dominating_oom`).

The trial process runs `probe_step`; this module is imported there, so its top level imports
neither optuna nor mlflow (nor torch: `probe_step` imports what it needs).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.table import Table

from vtd.sweep.execute.child import TrainingRequest
from vtd.sweep.execute.probe_step import ProbeKind
from vtd.sweep.execute.runner import ProcessOutcome, TrialLauncher
from vtd.sweep.plan.identity import MEMORY_FIELDS, MemorySizes
from vtd.sweep.store import record
from vtd.sweep.store.record import MB, Device, OutOfMemory
from vtd.sweep.store.words import describe
from vtd.train.config import TrainConfig

if TYPE_CHECKING:
    import threading

    from rich.console import Console

    from vtd.sweep.plan.config import Sweep

logger = logging.getLogger(__name__)

Verdict = Literal["fits", "out_of_memory", "error", "dominated", "interrupted"]
# What changes a cell's memory: everything in its configuration but these.
_NOT_MEMORY = {"seed", "initial_weights", "output_dir"}


@dataclass(frozen=True)
class ProbeCell(MemorySizes):
    """One configuration to probe, and the grid cells (parameter sets) it stands for."""

    config: TrainConfig
    params: tuple[Mapping[str, Any], ...]
    label: str

    @property
    def context(self) -> str:
        """Everything but batch and chunk size: cells of one context dominate each other."""
        dump = self.config.model_dump(mode="json", exclude=_NOT_MEMORY | set(MEMORY_FIELDS))
        return json.dumps(dump, sort_keys=True, default=str)


@dataclass
class CellProbe:
    """How one cell's probe ended."""

    cell: ProbeCell
    verdict: Verdict
    train_peak_mb: float | None = None
    eval_peak_mb: float | None = None
    peak_device_mb: float | None = None
    oom_mb: float | None = None
    detail: str = ""
    seconds: float = 0.0
    status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    dominating: ProbeCell | None = None  # the cell that did not fit, for a dominated one

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"


# --- seen from the worker -------------------------------------------------------------------


def probe_cells(sweep: Sweep) -> list[ProbeCell]:
    """The grid's distinct configurations, largest batch x chunk first.

    Listed values of every dimension make the grid (numeric ranges stay at the base value);
    cells that differ only in initial weights are probed once."""
    import itertools

    from vtd.sweep.store.study import cell_label, resolve

    listed = [dimension for dimension in sweep.space.dimensions if dimension.kind == "categorical"]
    grid = [
        dict(zip([dimension.name for dimension in listed], values, strict=True))
        for values in itertools.product(*(dimension.choices for dimension in listed))
    ]
    by_config: dict[str, tuple[TrainConfig, list[Mapping[str, Any]]]] = {}
    for params in grid:
        config = resolve(sweep, params, 0).config.model_copy(update={"initial_weights": None})
        key = json.dumps(config.model_dump(mode="json", exclude=_NOT_MEMORY), sort_keys=True)
        by_config.setdefault(key, (config, []))[1].append(params)
    cells = []
    for config, grid_params in by_config.values():
        shown = {name: value for name, value in grid_params[0].items() if name != "initial_weights"}
        cells.append(ProbeCell(config=config, params=tuple(grid_params), label=cell_label(shown)))
    return sorted(cells, key=lambda cell: (-cell.batch_size * cell.chunk_size, -cell.batch_size))


def dominating_failure(cell: ProbeCell, failed: list[CellProbe]) -> CellProbe | None:
    """A cell that did not fit, all else equal, with batch and chunk both at most `cell`'s."""
    for other in failed:
        if (
            other.cell.context == cell.context
            and other.cell.batch_size <= cell.batch_size
            and other.cell.chunk_size <= cell.chunk_size
        ):
            return other
    return None


def _request(
    sweep: Sweep, cell: ProbeCell, kind: ProbeKind, folder: Path, gpu: str | None
) -> TrainingRequest:
    config = cell.config.model_copy(update={"output_dir": folder, "epochs": 1})
    return TrainingRequest(
        config=config,
        log_path=folder / f"{kind}.log",
        memory_cap_mb=sweep.file.memory_cap_mb,
        cuda_visible_devices=gpu,
        probe=kind,
    )


def _judge(sweep: Sweep, outcome: ProcessOutcome, probe: CellProbe) -> bool:
    """Fill `probe` from one step's outcome; True when the step fitted."""
    probe.status = outcome.status
    if outcome.status == "completed":
        assert outcome.result is not None
        device_mb = float(outcome.result.get("peak_device_mb") or 0.0)
        probe.peak_device_mb = max(probe.peak_device_mb or 0.0, device_mb) or None
        return True
    if outcome.out_of_memory:
        probe.verdict = "out_of_memory"
        probe.oom_mb = outcome.peak_rss_mb
        if outcome.status == "memory_cap":
            probe.detail = (
                f"host: {outcome.peak_rss_mb:.0f} MB over the {sweep.file.memory_cap_mb} MB cap"
            )
        else:
            error = outcome.error or {}
            where = "CUDA" if outcome.status == "cuda_oom" else "host"
            first = (error.get("message") or "").strip().splitlines()[:1]
            probe.detail = f"{where}: {first[0][:200] if first else outcome.status}"
            for key in ("peak_device_mb", "device_total_mb"):
                if key in error:
                    probe.extra[key] = round(float(error[key]), 1)
            if "peak_device_mb" in error:
                probe.peak_device_mb = float(error["peak_device_mb"])
        return False
    probe.verdict = "interrupted" if outcome.status == "interrupted" else "error"
    message = (outcome.error or {}).get("message") or f"trial process {outcome.status}"
    probe.detail = str(message).strip().splitlines()[0][:200]
    return False


def probe_sweep(
    sweep: Sweep,
    *,
    launcher: TrialLauncher | None = None,
    on_cell: Callable[[CellProbe], None] | None = None,
    stop: threading.Event | None = None,
    gpu: str | None = None,
) -> list[CellProbe]:
    """Probe every cell of the sweep's grid (see the module docstring), in order; `gpu`: the
    GPU the probe's processes see (CUDA_VISIBLE_DEVICES), as a worker pinned to it would."""
    launcher = launcher or TrialLauncher()
    launcher.warm_up()
    results: list[CellProbe] = []
    for index, cell in enumerate(probe_cells(sweep)):
        if stop is not None and stop.is_set():
            break
        dominating = dominating_failure(cell, [r for r in results if r.verdict == "out_of_memory"])
        if dominating is not None:
            probe = CellProbe(
                cell,
                "dominated",
                detail=f"dominated by out-of-memory at {dominating.cell.label}",
                dominating=dominating.cell,
            )
        else:
            probe = CellProbe(cell, "fits")
            folder = sweep.study_dir / "probe" / str(index)
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            for kind in ("train", "evaluate"):
                outcome = launcher.run(
                    _request(sweep, cell, kind, folder, gpu), lambda _record: False, stop=stop
                )
                if kind == "train":
                    probe.train_peak_mb = outcome.peak_rss_mb
                else:
                    probe.eval_peak_mb = outcome.peak_rss_mb
                if not _judge(sweep, outcome, probe):
                    probe.detail = f"{kind} step, {probe.detail}"
                    break
            probe.seconds = time.perf_counter() - started
        logger.info("probe %s: %s %s", cell.label, probe.verdict, probe.detail)
        results.append(probe)
        if on_cell is not None:
            on_cell(probe)
    return results


def _mb(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def probe_table(sweep: Sweep, results: list[CellProbe]) -> Table:
    """Cells that fit, with their peak memory; those that do not, with the figures."""
    cap = f", cap {sweep.file.memory_cap_mb} MB" if sweep.file.memory_cap_mb else ""
    table = Table(title=f"probe of study {sweep.study_name}{cap}", title_justify="left")
    for name in ("cell", "fits", "train peak MB", "eval peak MB", "device peak MB", "s", "why"):
        table.add_column(name, justify="left" if name in ("cell", "fits", "why") else "right")
    styles = {"fits": "green", "out_of_memory": "yellow", "dominated": "dim"}
    words = {"fits": "yes", "out_of_memory": "no: out of memory", "dominated": "no: dominated"}
    for probe in sorted(results, key=lambda r: (not r.fits, r.cell.batch_size, r.cell.chunk_size)):
        style = styles.get(probe.verdict, "red")
        table.add_row(
            probe.cell.label,
            f"[{style}]{words.get(probe.verdict, probe.verdict)}[/]",
            _mb(probe.train_peak_mb),
            _mb(probe.eval_peak_mb),
            _mb(probe.peak_device_mb),
            f"{probe.seconds:.1f}" if probe.seconds else "",
            probe.detail,
        )
    return table


# --- recording, for `run --probe` -----------------------------------------------------------


def probed_outcome(probe: CellProbe, sweep: Sweep, device: Device) -> OutOfMemory:
    """The typed outcome of a trial pruned because its cell did not fit (or is dominated by
    one that did not), on `device`: final on the same hardware only, like any out-of-memory."""
    cap = sweep.file.memory_cap_mb
    if probe.verdict == "dominated" and probe.dominating is not None:
        return OutOfMemory(
            "dominated_by",
            device,
            batch_size=probe.dominating.batch_size,
            chunk_size=probe.dominating.chunk_size,
        )
    peaks = [mb for mb in (probe.oom_mb, probe.train_peak_mb, probe.eval_peak_mb) if mb]
    return OutOfMemory(
        "probed",
        device,
        peak_bytes=round(max(peaks) * MB) if peaks else None,
        limit_bytes=None if cap is None else cap * MB,
        batch_size=probe.cell.batch_size,
        chunk_size=probe.cell.chunk_size,
        message=probe.detail,
    )


def probed_attrs(probe: CellProbe, outcome: OutOfMemory) -> dict[str, Any]:
    """The user attributes of a probed trial: its outcome's, and the probe's peak memory."""
    attrs = {**record.outcome_attrs(outcome, describe(outcome)), "probed": True}
    peaks = [mb for mb in (probe.oom_mb, probe.train_peak_mb, probe.eval_peak_mb) if mb]
    if peaks:
        attrs["peak_host_mb"] = round(max(peaks), 1)
    return attrs


def record_probed(sweep: Sweep, results: list[CellProbe]) -> list[int]:
    """PRUNED (out of memory, probed) for every queued trial of a cell that did not fit or is
    dominated by one; returns their numbers. A trial another worker took meanwhile is left."""
    from optuna.trial import TrialState

    from vtd.sweep.store.queue import current_device
    from vtd.sweep.store.study import open_sweep_study

    failing = [probe for probe in results if probe.verdict in ("out_of_memory", "dominated")]
    if not failing:
        return []
    device = current_device(sweep)
    sweep_study = open_sweep_study(sweep, create=False)
    storage = sweep_study.storage
    pruned: list[int] = []
    try:
        for trial in sweep_study.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            params = trial.params or trial.system_attrs.get("fixed_params", {})
            probe = next((p for p in failing if params in map(dict, p.cell.params)), None)
            if probe is None:
                continue
            trial_id = storage.get_trial_id_from_study_id_trial_number(
                sweep_study.study_id, trial.number
            )
            if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                continue  # claimed by a worker first
            attrs = probed_attrs(probe, probed_outcome(probe, sweep, device))
            for key, value in {**attrs, "duration_s": 0.0}.items():
                storage.set_trial_user_attr(trial_id, key, value)
            storage.set_trial_state_values(trial_id, state=TrialState.PRUNED)
            pruned.append(trial.number)
    finally:
        storage.remove_session()
    return pruned


# --- the commands ---------------------------------------------------------------------------


def _say(console: Console) -> Callable[[CellProbe], None]:
    def say(probe: CellProbe) -> None:
        console.print(
            f"probe {probe.cell.label}: {probe.verdict.replace('_', ' ')}"
            + (f" ({probe.detail})" if probe.detail else ""),
            markup=False,
            soft_wrap=True,
        )

    return say


def probe_and_show(
    sweep: Sweep,
    console: Console,
    *,
    stop: threading.Event | None = None,
    gpu: str | None = None,
) -> list[CellProbe]:
    """`vtd-sweep probe FILE [--gpu ID]`: the demo data made if needed, every cell probed on
    `gpu` (else where a trial would run without --gpus), the table."""
    if sweep.file.demo is not None:
        from vtd.demo.generate import ensure_demo

        ensure_demo(sweep.cache_dir, sweep.file.demo)
    results = probe_sweep(sweep, on_cell=_say(console), stop=stop, gpu=gpu)
    console.print(probe_table(sweep, results))
    return results


def probe_and_record(
    sweep: Sweep,
    console: Console,
    *,
    stop: threading.Event | None = None,
    gpu: str | None = None,
) -> list[int]:
    """`vtd-sweep run --probe [--gpus ...]`, after the study is prepared: probe (on `gpu`, the
    first of --gpus), show, and record the queued trials of the cells that do not fit as
    PRUNED; returns their numbers."""
    results = probe_and_show(sweep, console, stop=stop, gpu=gpu)
    if stop is not None and stop.is_set():
        return []
    pruned = record_probed(sweep, results)
    if pruned:
        console.print(
            f"{len(pruned)} trial(s) pruned before training, their cells out of memory: "
            + ", ".join(str(number) for number in pruned)
        )
    return pruned
