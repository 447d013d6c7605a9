"""Where a later cell's trial spends its time (issue 13): one trial of `bench_sweep.py`'s
second cell, its training windows and evaluation read from the cache the first cell wrote.

    .venv/bin/python benchmarks/bench_trial_phases.py [--quick] [--keep FOLDER]

Writes `bench_sweep.py`'s data and fp32 sweep file, trains its first cell (batch 2 x chunk 2,
filling the study's shared cache), then trains the second (batch 2 x chunk 3) in this process
with each phase timed: set-up (model, data index, the frozen part's hash), optimizer steps
(ConvLSTM, decoder, Adam), frozen-part outputs served by the cache, evaluation, checkpoint
saving, and the rest (data loading). Prints seconds per phase and the frames read and encoded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_sweep  # noqa: E402 - found through the line above


def timed(seconds: Counter[str], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - started

    return wrapper


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the small model on tiny data")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-phases-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import vtd.train.recipe as recipe
        from vtd.sweep.plan.config import load_sweep
        from vtd.sweep.store.study import resolve
        from vtd.train.recipe import FineTuning, finetune

        bench_sweep.write_data(folder, args.quick)
        sweep_file = bench_sweep.write_sweep(folder, "phases", "fp32", args.quick, epochs=2)
        sweep = load_sweep(sweep_file)

        def cell(batch: int, chunk: int):
            config = resolve(sweep, {"batch_size": batch, "chunk_size": chunk}, 0).config
            return config.model_copy(update={"output_dir": folder / f"b{batch}c{chunk}"})

        finetune(cell(2, 2))  # fills the study's shared cache
        seconds: Counter[str] = Counter()
        started = time.perf_counter()
        run = FineTuning(cell(2, 3))
        seconds["set-up"] = time.perf_counter() - started
        run.step = timed(seconds, "optimizer steps", run.step)
        run._record = timed(seconds, "evaluation", run._record)  # noqa: SLF001 - timed only
        recipe.save_epoch = timed(seconds, "checkpoints", recipe.save_epoch)
        features = run.training_features
        assert features is not None, "the sweep shares training windows"
        features.encode = timed(seconds, "frozen outputs from the cache", features.encode)
        started = time.perf_counter()
        run.train()
        whole = time.perf_counter() - started
        run.close()
        seconds["data loading and the rest"] = whole - sum(
            value for name, value in seconds.items() if name != "set-up"
        )
        for name, value in seconds.items():
            print(f"{name:32} {value:6.2f} s")
        print(
            f"{'training frames':32} {features.stats['read']} read, "
            f"{features.stats['encoded']} encoded"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
