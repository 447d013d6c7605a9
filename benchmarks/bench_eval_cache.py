"""Evaluation features shared across trials (issue 13, item 2): what a study's second trial saves.

Two trials of one study (same initial weights, other learning rates) each set up as the sweep
does (`eval_cache_dir` in the study's folder) and run their first epoch's evaluation on the
validation and test splits: the first encodes every evaluation frame with the frozen part and
writes the shared cache, the second reads it. A third, with sharing off
(`eval_cache_gb: 0`), gives the plain cost. Also checks that the metrics are identical.

    .venv/bin/python benchmarks/bench_eval_cache.py [--variant full|small]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from vtd.data import DataConfig
from vtd.demo.generate import DemoConfig, DemoLayout, ensure_demo
from vtd.evaluate import evaluate
from vtd.model import VTD, ModelConfig, save_checkpoint
from vtd.train import FineTuning, TrainConfig


def first_epoch_evaluation(config: TrainConfig) -> tuple[float, dict[str, object], int]:
    """Seconds of one evaluation of every split, the metrics, frozen-part chunks encoded."""
    run = FineTuning(config)
    try:
        started = time.perf_counter()
        metrics = {
            name: evaluate(run.model, data, device=run.device).metrics
            for name, data in run.evaluation.items()
        }
        seconds = time.perf_counter() - started
        encoded = sum(data.stats["encoded"] for data in run.evaluation.values())
        return seconds, metrics, encoded
    finally:
        run.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["full", "small"], default="full")
    parser.add_argument("--clips-per-show", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench-eval-cache-") as folder:
        root = Path(folder)
        demo = ensure_demo(
            root / "demo",
            DemoConfig(
                objectattention=DemoLayout(
                    train_shows=3,
                    test_shows=1,
                    clips_per_show=args.clips_per_show,
                    width=160,
                    height=120,
                )
            ),
        )
        model = ModelConfig(variant=args.variant)
        weights = root / "init.pt"
        save_checkpoint(VTD(model), weights)
        base = {
            "data": DataConfig(sources=[str(demo.objectattention.root)], validation={"groups": 1}),
            "model": model,
            "initial_weights": weights,
            "checkpoints": "none",
            "device": "cpu",
            "eval_cache_dir": root / "study" / "eval_cache",
        }
        cases = [
            ("first trial (writes the cache)", {"lr": 5e-5}),
            ("second trial (reads it)", {"lr": 1e-4}),
            ("sharing off (eval_cache_gb: 0)", {"lr": 1e-4, "eval_cache_gb": 0}),
        ]
        results = []
        for index, (name, overrides) in enumerate(cases):
            config = TrainConfig(**base, **overrides, output_dir=root / f"t{index}")
            results.append((name, *first_epoch_evaluation(config)))
        frames = sum(m.frames for m in results[0][2].values())
        print(
            f"{args.variant} model, {frames} evaluation frames, torch threads "
            f"{torch.get_num_threads()}"
        )
        print(f"{'case':<34} {'eval s':>8} {'chunks encoded':>15}")
        for name, seconds, _, encoded in results:
            print(f"{name:<34} {seconds:>8.2f} {encoded:>15}")
        print(
            f"second / first: {results[1][1] / results[0][1]:.3f}; "
            f"second / plain: {results[1][1] / results[2][1]:.3f}"
        )
        identical = results[1][2] == results[2][2]
        print(f"second trial's metrics identical to the plain evaluation: {identical}")
        return 0 if identical and results[1][3] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
