"""Batched published AUC against one scikit-learn call per frame (issue 2's 20x target).

    .venv/bin/python benchmarks/bench_auc.py [--maps 256] [--repeats 5]

Both sides do the whole published computation: 8-bit rescale of the prediction, the
binarised Gaussian ground truth, and the ROC AUC with ties averaged.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from vtd.data.targets import gaze_heatmap
from vtd.evaluate import auc, to_8bit


def per_frame_reference(maps: torch.Tensor, gaze: torch.Tensor) -> np.ndarray:
    truth = gaze_heatmap(gaze).numpy() > 0
    scaled = to_8bit(maps).numpy()
    return np.array(
        [roc_auc_score(t.ravel(), s.ravel()) for t, s in zip(truth, scaled, strict=True)]
    )


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(args.maps, 64, 64, generator=generator)
    gaze = torch.rand(args.maps, 2, generator=generator, dtype=torch.float64)
    ours = auc(maps, gaze).numpy()
    reference = per_frame_reference(maps, gaze)
    assert np.allclose(ours, reference, rtol=0, atol=1e-12), "batched AUC differs from sklearn"

    batched = best_of(args.repeats, lambda: auc(maps, gaze))
    sklearn = best_of(args.repeats, lambda: per_frame_reference(maps, gaze))
    threads = torch.get_num_threads()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {threads}")
    print(f"{args.maps} maps of 64x64, best of {args.repeats}")
    print(f"  batched (torch):        {batched * 1e3:8.1f} ms")
    print(f"  per-frame (sklearn):    {sklearn * 1e3:8.1f} ms")
    print(f"  speed-up:               {sklearn / batched:8.1f}x")


if __name__ == "__main__":
    main()
