"""A faster frozen part (issue 13, item 3): channels_last and bf16 against fp32, on the CPU.

1. Speed: the full model's frozen part (`VTD.encode`: both ResNet-50 pathways, attention,
   encoder) on one evaluation chunk (batch 4 x chunk 3 = 12 frames of 224 x 224), median of
   `--repeats` calls after a warm-up, in fp32, fp32 + channels_last, bf16 autocast and bf16 +
   channels_last.
2. Accuracy: the small model trained on the demo (everything training, as the demo's
   pretrained weights are made, `--epochs`), then the test split evaluated in the same four
   ways; AUC and distance must stay within 0.01 of fp32 (exit 1 otherwise).

    .venv/bin/python benchmarks/bench_precision.py [--repeats 5] [--epochs 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vtd.data import DataConfig, chunk_loader, load_splits
from vtd.demo.generate import DemoConfig, DemoLayout, ensure_demo
from vtd.evaluate import EvaluationData, evaluate
from vtd.evaluate.loop import autocast
from vtd.model import VTD, ModelConfig
from vtd.train import TrainConfig, finetune
from vtd.train.device import cpu_has_fast_bf16

MODES = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def label(precision: str, channels_last: bool) -> str:
    return precision + (" + channels_last" if channels_last else "")


def encode_seconds(clips, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = VTD(ModelConfig(variant="full")).eval()
    chunk = next(iter(chunk_loader(clips, batch_size=4, chunk_size=3, train=False)))
    device = torch.device("cpu")
    seconds = {}
    for precision, channels_last in MODES:
        net = model.to(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )
        images, faces = chunk.images, chunk.faces
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
            faces = faces.contiguous(memory_format=torch.channels_last)
        times = []
        for _ in range(repeats + 1):  # the first call is a warm-up (oneDNN primitives)
            started = time.perf_counter()
            with torch.no_grad(), autocast(device, precision):
                net.encode(images, chunk.head_channels, faces)
            times.append(time.perf_counter() - started)
        seconds[label(precision, channels_last)] = statistics.median(times[1:])
    return seconds


def accuracy(data: DataConfig, folder: Path, epochs: int) -> dict[str, tuple[float, float]]:
    config = TrainConfig(
        data=data,
        model=ModelConfig(variant="small"),
        freeze="none",
        epochs=epochs,
        lr=5e-4,
        batch_size=2,
        chunk_size=4,
        checkpoints="best_last",
        output_dir=folder / "demo-weights",
        device="cpu",
    )
    result = finetune(config)
    model = VTD(config.model)
    model.load_state_dict(torch.load(result.last_checkpoint, weights_only=True)["model"])
    model.eval()
    clips = load_splits(data).test
    found = {}
    for precision, channels_last in MODES:
        net = model.to(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format
        )
        split = EvaluationData(clips, batch_size=4, chunk_size=3, channels_last=channels_last)
        metrics = evaluate(net, split, precision=precision).metrics
        found[label(precision, channels_last)] = (metrics.auc, metrics.dist)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--skip-speed", action="store_true", help="the accuracy part only")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_fast_bf16()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as folder:
        demo = ensure_demo(
            Path(folder) / "demo",
            DemoConfig(
                objectattention=DemoLayout(
                    train_shows=3, test_shows=1, clips_per_show=2, width=160, height=120
                )
            ),
        )
        data = DataConfig(sources=[str(demo.objectattention.root)])
        if not args.skip_speed:
            seconds = encode_seconds(load_splits(data).test, args.repeats)
            base = seconds["fp32"]
            print("\nfull model, frozen part (encode), 12 frames:")
            for name, value in seconds.items():
                print(f"  {name:<24} {value:6.3f} s  ({base / value:4.2f}x fp32)")
        scores = accuracy(data, Path(folder), args.epochs)
    auc0, dist0 = scores["fp32"]
    print(f"\nsmall model trained {args.epochs} epochs on the demo, test split:")
    worst = 0.0
    for name, (auc, dist) in scores.items():
        worst = max(worst, abs(auc - auc0), abs(dist - dist0))
        print(
            f"  {name:<24} AUC {auc:.4f} ({auc - auc0:+.4f})  dist {dist:.4f} ({dist - dist0:+.4f})"
        )
    print(f"largest difference from fp32: {worst:.4f} (limit 0.01)")
    return 0 if worst <= 0.01 else 1


if __name__ == "__main__":
    raise SystemExit(main())
