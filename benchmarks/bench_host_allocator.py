"""One full-model training epoch with glibc's allocator as it comes and as vtd tunes it
(`vtd.host_allocator`): wall, CPU, page faults and peak memory.

    .venv/bin/python benchmarks/bench_host_allocator.py [--repeats 3] [--quick] [--keep FOLDER]

Writes `bench_sweep.py`'s data and fp32 sweep file and trains its first cell (batch 2 x
chunk 2, one epoch) to fill the study's shared cache. Then, `--repeats` times in turn, a fresh
process with `VTD_HOST_ALLOCATOR=system` and one without it each train one epoch of the third
cell (batch 2 x chunk 4) reading that cache, so both do the same steps (ConvLSTM, decoder,
Adam). Each reports the epoch's wall seconds, user and system CPU seconds, minor page faults
and peak resident memory (Linux: /proc/self). Prints every run, the medians and the median ratio of
the pairs (tuned / system).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_sweep  # noqa: E402 - found through the line above

if TYPE_CHECKING:
    from vtd.train.config import TrainConfig

FIELDS = ("wall_s", "user_s", "sys_s", "minor_faults", "peak_rss_mb")
DIGITS = {"wall_s": 2, "user_s": 2, "sys_s": 2, "minor_faults": 0, "peak_rss_mb": 0}


def _cell(sweep_file: Path, batch: int, chunk: int, output: Path) -> TrainConfig:
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.store.study import resolve

    config = resolve(load_sweep(sweep_file), {"batch_size": batch, "chunk_size": chunk}, 0).config
    return config.model_copy(update={"output_dir": output, "epochs": 1})


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def one_epoch(sweep_file: Path, output: Path) -> None:
    """In a fresh process: one epoch of the cell batch 2 x chunk 4, measured; prints JSON.
    The peak resident memory is the epoch's own (the set-up's peak is cleared first)."""
    from vtd.train.recipe import FineTuning

    run = FineTuning(_cell(sweep_file, 2, 4, output))
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    run._train_epoch(1)  # noqa: SLF001 - the recipe's own epoch, without evaluation or saving
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    run.close()
    figures = {
        "wall_s": wall,
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "peak_rss_mb": _peak_rss_mb(),
    }
    print(json.dumps(figures))


def _run(sweep_file: Path, output: Path, allocator: str) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    environment.pop("VTD_HOST_ALLOCATOR", None)
    if allocator == "system":
        environment["VTD_HOST_ALLOCATOR"] = "system"
    done = subprocess.run(
        [sys.executable, __file__, "--epoch", str(sweep_file), str(output)],
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the small model on tiny data")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument("--epoch", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epoch:
        one_epoch(*args.epoch)
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-allocator-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        from vtd.train.recipe import finetune

        bench_sweep.write_data(folder, args.quick)
        sweep_file = bench_sweep.write_sweep(folder, "allocator", "fp32", args.quick, epochs=1)
        finetune(_cell(sweep_file, 2, 2, folder / "b2c2"))  # fills the study's shared cache
        runs: dict[str, list[dict[str, float]]] = {"system": [], "tuned": []}
        load_before = os.getloadavg()[0]
        for repeat in range(args.repeats):
            for allocator in runs:
                output = folder / f"{allocator}{repeat}"
                runs[allocator].append(_run(sweep_file, output, allocator))
                shutil.rmtree(output, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(bench_sweep.machine_line(load_before, args.quick))
    print("| allocator | run | " + " | ".join(FIELDS) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in FIELDS) + " |")
    for allocator, figures in runs.items():
        for number, run in enumerate(figures, 1):
            cells = " | ".join(f"{run[field]:.{DIGITS[field]}f}" for field in FIELDS)
            print(f"| {allocator} | {number} | {cells} |")
    for allocator, figures in runs.items():
        medians = ", ".join(
            f"{field} {statistics.median(run[field] for run in figures):.{DIGITS[field]}f}"
            for field in FIELDS
        )
        print(f"median, {allocator}: {medians}")
    ratios = [
        tuned["wall_s"] / system["wall_s"]
        for system, tuned in zip(runs["system"], runs["tuned"], strict=True)
    ]
    print(f"epoch wall, tuned / system, median of the pairs: {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
