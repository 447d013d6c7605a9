"""What to check the day a GPU is lent (issue 13, item 4); run through `gpu_check.sh`.

On one CUDA device, in at most ~8 minutes, it prints:
1. a real CUDA out-of-memory under an emulated 8 GB card (`training.device_memory_gb: 8`): a
   tiny grid sweep through `vtd-sweep run`, full model, everything training (the memory the
   authors' loop needed), whose big cells end PRUNED with their figures and the cells they
   dominate skipped, then `vtd-sweep status`;
2. one fp16 step (grad scaler) and one bf16 step of the full model, with finite losses;
3. frames per second and peak CUDA memory of a full-model training step (published recipe)
   for each cell of the seed's grid (batch 4/8/16 x chunk 2/3/4);
4. the largest cell that fits in 8, 16, 24 and 80 GB, from those peaks.
Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

GRID = [(batch, chunk) for batch in (4, 8, 16) for chunk in (2, 3, 4)]
CARDS_GB = (8, 16, 24, 80)
ROOT = Path(__file__).resolve().parent.parent


def oom_sweep(folder: Path, cap_gb: float) -> None:
    """A tiny grid through `vtd-sweep run`: big cells run out of the capped memory for real."""
    sweep = folder / "gpu_oom.yaml"
    sweep.write_text(
        textwrap.dedent(
            f"""\
            study: gpu-oom-check
            studies_dir: studies
            sampler: grid
            demo:
              seed: 1
              min_frames: 8
              max_frames: 16
              objectattention:
                {{train_shows: 3, test_shows: 1, clips_per_show: 16, width: 160, height: 120}}
            data:
              sources: [objectattention]
              validation: {{groups: 1}}
            training:
              model: {{variant: full}}
              freeze: none
              epochs: 1
              device: cuda
              device_memory_gb: {cap_gb:g}
              eval_batch_size: 4
            search_space:
              batch_size: [4, 16]
              chunk_size: [2, 4]
            """
        )
    )
    cli = [sys.executable, "-m", "vtd.cli"]  # the vtd-sweep command of this interpreter
    print(f"\n== 1. CUDA out of memory under an emulated {cap_gb:g} GB card (vtd-sweep run)")
    subprocess.run([*cli, "run", str(sweep)], check=False, timeout=300)
    subprocess.run([*cli, "status", str(sweep)], check=False, timeout=120)


def full_model_step(
    batch: int, chunk: int, precision: str, device: str = "cuda", variant: str = "full"
) -> tuple[float, float, float]:
    """(loss, frames/s, peak MB) of published-recipe training steps on the first training
    chunk of `batch` demo clips x `chunk` frames."""
    from vtd.data import DataConfig, chunk_loader
    from vtd.demo.generate import DemoConfig, DemoLayout, ensure_demo
    from vtd.model import ModelConfig
    from vtd.train import FineTuning, TrainConfig

    demo = ensure_demo(
        Path(tempfile.gettempdir()) / "vtd-gpu-check",
        DemoConfig(
            objectattention=DemoLayout(
                train_shows=4, test_shows=1, clips_per_show=4, width=160, height=120
            )
        ),
    )
    config = TrainConfig(
        data=DataConfig(sources=[str(demo.objectattention.root)]),
        model=ModelConfig(variant=variant),
        device=device,
        precision=precision,
        batch_size=batch,
        chunk_size=chunk,
        output_dir=Path(tempfile.gettempdir()) / "vtd-gpu-check-run",
        checkpoints="none",
    )
    run = FineTuning(config)
    first = next(
        iter(chunk_loader(run.train_clips, batch_size=batch, chunk_size=chunk, train=True))
    )
    data = first.to(run.device)
    cuda = run.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(run.device)
    loss = float(run.step(data)[0])  # warm-up: cuDNN autotuning, the allocator's pools
    steps = 3
    if cuda:
        torch.cuda.synchronize(run.device)
    started = time.perf_counter()
    for _ in range(steps):
        loss = float(run.step(data)[0])
    if cuda:
        torch.cuda.synchronize(run.device)
    seconds = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated(run.device) / 2**20 if cuda else 0.0
    run.close()
    del run, data
    if cuda:
        torch.cuda.empty_cache()
    return loss, len(first.inout) / seconds, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-gb", type=float, default=8.0, help="emulated card for part 1")
    parser.add_argument("--skip-sweep", action="store_true", help="parts 2-4 only")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; nothing to check (exit 0)")
        return 0
    props = torch.cuda.get_device_properties(0)
    print(
        f"gpu_check: {props.name}, {props.total_memory / 2**30:.1f} GB, torch {torch.__version__}"
    )
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    if not args.skip_sweep:
        with tempfile.TemporaryDirectory(prefix="vtd-gpu-oom-") as folder:
            oom_sweep(Path(folder), args.cap_gb)

    print("\n== 2. mixed precision steps (full model, batch 4 x chunk 3)")
    for precision in ("fp16", "bf16"):
        loss, _, _ = full_model_step(4, 3, precision)
        verdict = "finite" if math.isfinite(loss) else "NOT FINITE"
        print(f"{precision}: loss {loss:.4f} ({verdict})")

    print("\n== 3. full model, published recipe, fp32: one training step per cell")
    print(f"{'batch':>5} {'chunk':>5} {'frames/s':>9} {'peak GB':>8}")
    peaks: dict[tuple[int, int], float] = {}
    for batch, chunk in GRID:
        try:
            _, fps, peak_mb = full_model_step(batch, chunk, "fp32")
        except torch.cuda.OutOfMemoryError:
            print(f"{batch:>5} {chunk:>5} {'out of memory':>18}")
            torch.cuda.empty_cache()
            continue
        peaks[(batch, chunk)] = peak_mb / 1024
        print(f"{batch:>5} {chunk:>5} {fps:>9.1f} {peak_mb / 1024:>8.2f}")

    print("\n== 4. the largest cell (batch x chunk frames) that fits, by measured peak")
    for card in CARDS_GB:
        # the allocator's peak plus ~1 GB of CUDA context and fragmentation
        fitting = [cell for cell, peak in peaks.items() if peak + 1.0 <= card]
        best = max(fitting, key=lambda cell: (cell[0] * cell[1], cell[0]), default=None)
        print(f"{card:>3} GB: " + (f"batch {best[0]} x chunk {best[1]}" if best else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
