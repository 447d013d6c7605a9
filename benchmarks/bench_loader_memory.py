"""Peak host memory and frames/s of the evaluation loader (issue 3's bounded-memory target).

    .venv/bin/python benchmarks/bench_loader_memory.py [--workers 0] [--quick]

Writes (into a temporary folder, fixed seed) clips of 640x360 JPEG frames in the
VideoAttentionTarget layout, then runs the evaluation loader (`chunk_loader(train=False)`,
batch 8, chunk 3) over three cases, each in a fresh subprocess: 8 clips x 400 frames,
8 x 50 frames, 16 x 400 frames. For each it reports frames/s over the full pass and:

- the subprocess's peak RSS (`ru_maxrss`);
- the peak memory of its process tree: its RSS plus each loader worker's unique set size,
  sampled with psutil every 10 ms; and that figure before the first chunk;
- the largest rise of the system's shared memory during the pass (chunks on their way from
  a worker to the main process).

Acceptance (issue 3), on the larger of the peak RSS and the tree peak plus the shared memory
rise: < 1.5 GB, and growth < 10% from 8x50 to 8x400 frames and from 8 to 16 clips; at least
the published loader's 45-60 frames/s on 2 cores. Exit status 1 when a figure misses it.
`--quick` is a small smoke run (tiny frames; the memory limit alone is checked).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

PEAK_LIMIT_MB = 1536.0
GROWTH_LIMIT = 0.10
MIN_FRAMES_PER_SECOND = 45.0
SEED = 0


@dataclass(frozen=True)
class Case:
    clips: int
    frames: int

    @property
    def name(self) -> str:
        return f"{self.clips}x{self.frames}"


@dataclass(frozen=True)
class Setup:
    width: int
    height: int
    batch_size: int
    chunk_size: int
    cases: tuple[Case, ...]


FULL = Setup(640, 360, 8, 3, (Case(8, 400), Case(8, 50), Case(16, 400)))
QUICK = Setup(160, 90, 2, 3, (Case(2, 16), Case(2, 2), Case(4, 16)))


def write_data(root: Path, setup: Setup) -> None:
    """Frames for the largest case, and one annotation folder per case.

    The second half of the clips are symbolic links to the first half's folders (same bytes
    to decode, half the time to write); the loader opens them like any other file.
    """
    rng = np.random.default_rng(SEED)
    clip_count = max(case.clips for case in setup.cases)
    frame_count = max(case.frames for case in setup.cases)
    unique = (clip_count + 1) // 2
    width, height = setup.width, setup.height
    head = max(8, height // 6)
    tracks = []
    for clip in range(clip_count):
        folder = root / "images" / "Show" / f"clip{clip:02d}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        phase = rng.uniform(0, 2 * np.pi)
        xs = (width - 2 * head) / 2 * (1 + np.sin(phase + np.arange(frame_count) / 25))
        tracks.append(xs.astype(int))
        if clip >= unique:
            folder.symlink_to(root / "images" / "Show" / f"clip{clip - unique:02d}")
            tracks[-1] = tracks[clip - unique]
            continue
        folder.mkdir()
        coarse = rng.integers(0, 256, size=(height // 20 + 1, width // 20 + 1, 3), dtype=np.uint8)
        background = np.asarray(
            Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
        )
        for frame, x in enumerate(tracks[-1]):
            pixels = background.copy()
            pixels[height // 4 : height // 4 + head, x : x + head] = (230, 190, 160)
            Image.fromarray(pixels).save(folder / f"{frame:08d}.jpg", quality=90)
    for case in setup.cases:
        for clip in range(case.clips):
            lines = []
            for frame in range(case.frames):
                x = int(tracks[clip][frame])
                gaze = "-1,-1" if frame % 10 == 9 else f"{width * 3 // 4},{height * 2 // 3}"
                lines.append(
                    f"{frame:08d}.jpg,{x},{height // 4},{x + head},{height // 4 + head},{gaze}"
                )
            annotation = root / f"annotations_{case.name}" / "test" / "Show" / f"clip{clip:02d}"
            annotation.mkdir(parents=True, exist_ok=True)
            (annotation / "s00.txt").write_text("\n".join(lines) + "\n")


def tree_memory(process: psutil.Process) -> int:
    """RSS of the process plus the unique set size of each child (loader worker).

    A worker is forked from the process and shares its pages (torch's libraries) until it
    writes to them; its USS is what it holds on its own. Unlike PSS, the figure does not
    change with whatever else runs on the machine. RSS where the system has no USS.
    """
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        # A worker that has just exited holds no memory any more.
        with contextlib.suppress(psutil.Error):
            info = child.memory_full_info()
            total += getattr(info, "uss", info.rss)
    return total


def shared_memory() -> int:
    """The system's shared memory (/dev/shm and the like; 0 where psutil cannot tell)."""
    return getattr(psutil.virtual_memory(), "shared", 0)


class PeakSampler:
    """The largest memory of this process and its children, sampled in a background thread.

    Also the largest rise of the system's shared memory: chunks on their way from a worker
    to the main process sit there, mapped by neither for a moment. Other programs' shared
    memory moves it too, so it is an upper bound.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0
        self.shared_rise = 0
        self._shared_before = shared_memory()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._process = psutil.Process()

    def _sample(self) -> None:
        self.peak = max(self.peak, tree_memory(self._process))
        self.shared_rise = max(self.shared_rise, shared_memory() - self._shared_before)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def run_case(
    root: Path, case: str, setup: Setup, workers: int, loader_of: Any = None
) -> dict[str, float]:
    """One loader pass, in this (fresh) process; returns the figures. `loader_of` replaces
    `chunk_loader` (same arguments): how tests show that a worse loader fails the check."""
    from vtd.data import SourceSpec, build_index, chunk_loader

    start = time.perf_counter()
    clips = build_index(SourceSpec(root=root, annotations=f"annotations_{case}"))
    indexed = time.perf_counter() - start
    loader = (loader_of or chunk_loader)(
        clips,
        batch_size=setup.batch_size,
        chunk_size=setup.chunk_size,
        train=False,
        num_workers=workers,
        pin_memory=False,
    )
    before = tree_memory(psutil.Process())
    frames = 0
    checksum = 0.0
    with PeakSampler() as sampler:
        start = time.perf_counter()
        for chunk in loader:
            frames += len(chunk)
            checksum += float(chunk.images[:, 0, 0, 0].sum())
        seconds = time.perf_counter() - start
    return {
        "frames": frames,
        "seconds": seconds,
        "fps": frames / seconds,
        "index_seconds": indexed,
        "before_mb": before / 2**20,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tree_peak_mb": sampler.peak / 2**20,
        "shared_rise_mb": sampler.shared_rise / 2**20,
        "checksum": checksum,
    }


def child_figures(root: Path, case: Case, quick: bool, workers: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(root), case.name, "--workers", str(workers)]
    if quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"case {case.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def total(figures: dict[str, float]) -> float:
    """Peak memory of the tree plus the shared memory in flight (counted twice when mapped)."""
    return figures["tree_peak_mb"] + figures["shared_rise_mb"]


def growth(small: dict[str, float], large: dict[str, float]) -> float:
    """How much more the larger case's peak is than the smaller's (0.1: 10% more)."""
    return total(large) / total(small) - 1


def judge(results: dict[str, dict[str, float]], setup: Setup, quick: bool) -> list[str]:
    """What misses the acceptance figures (empty when all pass)."""
    failures = []
    for name, figures in results.items():
        peak = max(figures["maxrss_mb"], total(figures))
        if peak >= PEAK_LIMIT_MB:
            failures.append(f"{name}: peak RSS {peak:.0f} MB >= {PEAK_LIMIT_MB:.0f} MB")
        if not quick and figures["fps"] < MIN_FRAMES_PER_SECOND:
            failures.append(f"{name}: {figures['fps']:.0f} frames/s < {MIN_FRAMES_PER_SECOND}")
    if not quick:
        base, short, double = (results[case.name] for case in setup.cases)
        for label, small, large in (
            ("longer clips", short, base),
            ("twice the clips", base, double),
        ):
            grew = growth(small, large)
            if grew >= GROWTH_LIMIT:
                failures.append(f"{label}: peak RSS grew {grew:.1%} >= {GROWTH_LIMIT:.0%}")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup = QUICK if args.quick else FULL
    if args.child:
        root, case = args.child
        print(json.dumps(run_case(Path(root), case, setup, args.workers)))
        return

    root = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        start = time.perf_counter()
        write_data(root, setup)
        print(f"wrote the frames in {time.perf_counter() - start:.0f} s")
        results = {
            case.name: child_figures(root, case, args.quick, args.workers) for case in setup.cases
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{setup.width}x{setup.height} JPEG, batch {setup.batch_size}, chunk {setup.chunk_size}, "
        f"{args.workers} workers\n"
    )
    print("| case | frames | frames/s | before MB | peak RSS MB | tree peak MB | shm rise MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, figures in results.items():
        print(
            f"| {name} | {figures['frames']:.0f} | {figures['fps']:.0f} | "
            f"{figures['before_mb']:.0f} | {figures['maxrss_mb']:.0f} | "
            f"{figures['tree_peak_mb']:.0f} | {figures['shared_rise_mb']:.0f} |"
        )
    failures = judge(results, setup, args.quick)
    for failure in failures:
        print(f"FAIL {failure}")
    if failures:
        sys.exit(1)
    print("\nall acceptance figures met")


if __name__ == "__main__":
    main()
