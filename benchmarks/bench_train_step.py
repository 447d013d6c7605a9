"""One training step of the full model: the authors' loop against our frozen part (issue 4).

    .venv/bin/python benchmarks/bench_train_step.py [--batch 2] [--chunk 3] [--steps 3]

Each variant runs in a fresh subprocess so that its peak resident memory is its own:
- `published`: what the authors' loop did: the whole network runs with autograd on and the
  backward pass goes through both ResNets, although only the ConvLSTM, decoder and fc_inout
  are in the optimizer;
- `frozen`: `vtd.train`'s step: the frozen part under `no_grad` (no gradients, no stored
  activations), the trained part with autograd.
Inputs are random tensors of the real shapes; data loading is measured by
`bench_loader_memory.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

from vtd.loss import chunk_loss
from vtd.model import VTD, EncodedFrames, ModelConfig


def one_variant(variant: str, batch: int, chunk: int, steps: int, model_variant: str) -> dict:
    torch.manual_seed(0)
    model = VTD(ModelConfig(variant=model_variant))
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    if variant == "frozen":
        for parameter in model.frozen_parameters():
            parameter.requires_grad_(False)
    optimizer = torch.optim.Adam(model.trainable_groups(5e-5))
    frames = batch * chunk
    batch_sizes = torch.full((chunk,), batch, dtype=torch.int64)
    images, faces = torch.randn(frames, 3, 224, 224), torch.randn(frames, 3, 224, 224)
    heads = torch.zeros(frames, 1, 224, 224)
    heads[:, :, 40:90, 60:110] = 1
    targets, labels = torch.rand(frames, 64, 64), torch.ones(frames)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        if variant == "frozen":
            with torch.no_grad():
                encoded = model.encode(images, heads, faces)
            heatmap, inout, _ = model.decode(
                EncodedFrames(encoded.scene, encoded.inout), None, batch_sizes
            )
        else:
            heatmap, inout, _ = model(images, heads, faces, batch_sizes=batch_sizes)
        loss = chunk_loss(heatmap, targets, inout, labels)
        loss.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return {
        "variant": variant,
        "seconds_per_step": min(times[1:]) if len(times) > 1 else times[0],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--model", choices=["full", "small"], default="full")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = one_variant(args.child, args.batch, args.chunk, args.steps, args.model)
        print(json.dumps(result))
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}; model {args.model}, batch {args.batch} x chunk "
        f"{args.chunk} = {args.batch * args.chunk} frames a step, best of {args.steps - 1}"
    )
    for variant in ("published", "frozen"):
        command = [sys.executable, __file__, "--child", variant]
        command += ["--batch", str(args.batch), "--chunk", str(args.chunk)]
        command += ["--steps", str(args.steps), "--model", args.model]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        print(
            f"  {variant:10s} {result['seconds_per_step']:6.2f} s a step, "
            f"peak RSS {result['peak_rss_mb']:7.0f} MB"
        )


if __name__ == "__main__":
    main()
