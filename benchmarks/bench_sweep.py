"""A whole sweep, the lab's way against ours, on the same work (issue 13 item 1).

    .venv/bin/python benchmarks/bench_sweep.py [--quick] [--keep FOLDER]

The seed's grid shrunk to fit: the full model, batch 2 x chunk {2, 3, 4} (three cells), two
epochs, fresh initial weights, on ObjectAttention-shaped data the script writes first:
`.ppm` frames of 640x480, clips of 30-36 frames (`vtd.demo.generate`'s synthetic scenes, annotation
files in the ObjectAttention layout the reader takes today: a `frame,x_min,...` header, comma
separated), 2 training sessions of one clip each and 1 test session of one clip. The clips
are few and short so that both ways run in under 15 minutes on a 2-core CPU.

- The lab's way, as it ran: for each cell a fresh Python process trains as the authors' loop
  did (autograd through the frozen part, which is only left out of the optimizer; a full
  checkpoint every epoch; no evaluation), then one fresh process per epoch's checkpoint
  evaluates the test split from scratch (`vtd-sweep eval`).
- Ours: `vtd-sweep run` on a sweep file of the same cells (the frozen part under no_grad, one
  fork-server process per trial, the frozen part's outputs shared by the trials: evaluation
  splits and training windows, which the first trial encodes and the others read; fused Adam;
  best and last checkpoints, best a link), in fp32, then again with `precision: bf16`.

Both use the same configuration (`TrainConfig` resolved from the one sweep file), seed, data
order and evaluation, so their test AUCs agree within one seed's noise (the frozen part gets
no update either way; only float rounding differs: the later trials read frozen outputs that
the first trial computed in chunks of another size). Prints the wall times, the ratios (target:
ours at most 0.3x the lab's in fp32) and the test AUC and distance of each cell's last epoch.
`--quick` (the small model, 160x120 frames, clips of 8 frames, 1 epoch) checks the script in
a minute or two; its times say nothing about the target.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELLS = ((2, 2), (2, 3), (2, 4))

SWEEP = """\
study: {study}
sampler: grid
objective: {{metric: auc, split: test, reduce: last}}   # the lab read test metrics too
data:
  sources: [data/objectattention]
training:
  model: {{variant: {model}}}
  epochs: {epochs}
  lr: 5.0e-5
  seed: 0
  device: cpu
  precision: {precision}
  evaluate_initial: false     # the lab evaluated each epoch's checkpoint, not the initial weights
search_space:
  batch_size: [{batches}]
  chunk_size: [{chunks}]
"""


def _environment(host_allocator: str = "tuned") -> dict[str, str]:
    """The subprocesses' environment. The lab's processes ran with glibc's allocator as it
    comes ("system"); `vtd.host_allocator` tunes it in ours ("tuned")."""
    allocator = {"VTD_HOST_ALLOCATOR": host_allocator} if host_allocator == "system" else {}
    return {**os.environ, "PYTHONPATH": str(ROOT), **allocator}


def _vtd_sweep(*argv: str) -> list[str]:
    return [sys.executable, "-m", "vtd.cli", *argv]


def write_data(folder: Path, quick: bool) -> Path:
    """The synthetic ObjectAttention-layout data set; returns its root."""
    from vtd.demo.generate import DemoConfig, DemoLayout, generate_demo

    size = (160, 120) if quick else (640, 480)
    frames = (8, 8) if quick else (30, 36)
    config = DemoConfig(
        seed=0,
        min_frames=frames[0],
        max_frames=frames[1],
        objectattention=DemoLayout(
            train_shows=2, test_shows=1, clips_per_show=1, width=size[0], height=size[1]
        ),
        # required by the generator, unused here
        videoattentiontarget=DemoLayout(
            train_shows=1, test_shows=0, clips_per_show=1, width=64, height=48
        ),
    )
    return generate_demo(folder / "data", config).objectattention.root


def write_sweep(folder: Path, study: str, precision: str, quick: bool, epochs: int) -> Path:
    path = folder / f"{study}.yaml"
    path.write_text(
        SWEEP.format(
            study=study,
            model="small" if quick else "full",
            epochs=epochs,
            precision=precision,
            batches=", ".join(sorted({str(batch) for batch, _ in CELLS})),
            chunks=", ".join(str(chunk) for _, chunk in CELLS),
        )
    )
    return path


def machine_line(load_before: float, quick: bool, *notes: str) -> str:
    """The machine and its load around a benchmark, for the line above its table."""
    return "; ".join(
        (
            f"{platform.machine()}, {os.cpu_count()} cores",
            f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after",
            *notes,
            *(("QUICK (small model, tiny data)",) if quick else ()),
        )
    )


# --- the lab's way ----------------------------------------------------------------------------


def lab_train(config_file: Path) -> None:
    """In a fresh process: train one cell as the authors' loop did; a checkpoint per epoch."""
    import torch

    from vtd.model import save_checkpoint
    from vtd.train.config import TrainConfig
    from vtd.train.recipe import FineTuning

    config = TrainConfig.model_validate_json(config_file.read_text())
    # freeze "none": the step runs the whole network with autograd (through both ResNets);
    # the optimizer then holds only the published trainable groups, as the authors' did.
    run = FineTuning(config.model_copy(update={"freeze": "none"}))
    run.optimizer = torch.optim.Adam(
        run.model.trainable_groups(config.lr, config.inout_lr_factor), lr=config.lr
    )
    for epoch in range(1, config.epochs + 1):
        run._train_epoch(epoch)  # noqa: SLF001 - the recipe's own epoch, without evaluation
        save_checkpoint(run.model, config.output_dir / f"epoch_{epoch:02d}.pt")
        print(f"epoch {epoch} saved", flush=True)


def run_lab(
    folder: Path, sweep_file: Path, data_root: Path, host_allocator: str
) -> tuple[float, dict[str, dict]]:
    """The lab's way over every cell: wall seconds and each cell's last-epoch test metrics."""
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.store.study import resolve

    sweep = load_sweep(sweep_file)
    configs = []
    for batch, chunk in CELLS:
        output = folder / "lab" / f"b{batch}c{chunk}"
        output.mkdir(parents=True)
        params = {"batch_size": batch, "chunk_size": chunk}
        config = resolve(sweep, params, 0).config.model_copy(update={"output_dir": output})
        (output / "config.json").write_text(config.model_dump_json())
        configs.append((f"batch_size={batch}, chunk_size={chunk}", config))
    metrics: dict[str, dict] = {}
    started = time.perf_counter()
    for label, config in configs:
        subprocess.run(
            [sys.executable, __file__, "--lab-train", str(config.output_dir / "config.json")],
            env=_environment(host_allocator),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for epoch in range(1, config.epochs + 1):
            csv = config.output_dir / f"epoch_{epoch:02d}.csv"
            subprocess.run(
                _vtd_sweep(
                    "eval",
                    "--weights",
                    str(config.output_dir / f"epoch_{epoch:02d}.pt"),
                    "--data",
                    str(data_root),
                    "--subset",
                    "test",
                    "--model",
                    config.model.variant,
                    "--batch-size",
                    str(config.eval_batch_size),
                    "--chunk-size",
                    str(config.eval_chunk_size),
                    "--device",
                    "cpu",
                    "--csv",
                    str(csv),
                ),
                env=_environment(host_allocator),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        import pandas as pd

        row = pd.read_csv(csv).iloc[0]
        metrics[label] = {"auc": float(row["auc"]), "dist": float(row["dist"])}
    return time.perf_counter() - started, metrics


# --- ours -------------------------------------------------------------------------------------


def run_ours(sweep_file: Path) -> tuple[float, dict[str, dict]]:
    """`vtd-sweep run`: wall seconds and each cell's last-epoch test metrics."""
    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.reporting.results import trials_frame

    started = time.perf_counter()
    subprocess.run(
        _vtd_sweep("run", str(sweep_file)),
        env=_environment(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    trials = trials_frame(load_sweep(sweep_file))
    metrics = {}
    for row in trials.itertuples(index=False):
        if row.state != "COMPLETE":
            raise SystemExit(f"{sweep_file}: trial {row.number} ended {row.state}: {row.reason}")
        metrics[str(row.cell)] = {
            "auc": float(row.last_test_auc),
            "dist": float(row.last_test_dist),
            "seconds": float(row.duration_s),
        }
    return seconds, metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument(
        "--lab-host-allocator",
        choices=("system", "tuned"),
        default="system",
        help="glibc's allocator in the lab's processes: as the lab ran it (system, the "
        "default), or tuned as ours (what the lab's way would gain from vtd.host_allocator)",
    )
    parser.add_argument("--lab-train", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lab_train:
        lab_train(args.lab_train)
        return 0
    sys.path.insert(0, str(ROOT))
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    folder.mkdir(parents=True, exist_ok=True)
    epochs = 1 if args.quick else 2
    load_before = os.getloadavg()[0]
    try:
        data_root = write_data(folder, args.quick)
        fp32 = write_sweep(folder, "bench-fp32", "fp32", args.quick, epochs)
        bf16 = write_sweep(folder, "bench-bf16", "bf16", args.quick, epochs)
        lab_s, lab = run_lab(folder, fp32, data_root, args.lab_host_allocator)
        ours_s, ours = run_ours(fp32)
        ours_bf16_s, ours_bf16 = run_ours(bf16)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print(machine_line(load_before, args.quick, f"the lab's allocator: {args.lab_host_allocator}"))
    print("| way | wall | ratio to the lab's | " + " | ".join(lab) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in lab) + " |")
    for name, seconds, metrics in (
        ("the lab's (fp32)", lab_s, lab),
        ("ours, fp32", ours_s, ours),
        ("ours, bf16", ours_bf16_s, ours_bf16),
    ):
        cells = " | ".join(
            f"AUC {metrics[cell]['auc']:.4f}, dist {metrics[cell]['dist']:.4f}" for cell in lab
        )
        print(f"| {name} | {seconds:.0f} s | {seconds / lab_s:.2f}x | {cells} |")
    for name, metrics in (("ours, fp32", ours), ("ours, bf16", ours_bf16)):
        seconds = ", ".join(f"{metrics[cell]['seconds']:.1f} s" for cell in lab)
        print(f"{name}: trial durations in the order of the cells above: {seconds}")
    ratio = ours_s / lab_s
    verdict = "met" if ratio <= 0.3 else "NOT met"
    print(f"ours / the lab's, fp32: {ratio:.2f}x (target <= 0.30x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
