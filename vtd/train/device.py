"""The device of one fine-tuning run: which one, its set-up (CUDA memory cap, cuDNN
autotuning, the host allocator), loader workers, and whether the CPU runs bf16 natively."""

from __future__ import annotations

import logging
import os

import torch

from vtd.host_allocator import keep_freed_memory
from vtd.train.config import TrainConfig

logger = logging.getLogger(__name__)


def setup_device(config: TrainConfig) -> torch.device:
    """The run's device as `config` asks for it, checked against its precision and memory
    cap, and set up (CUDA: memory cap and cuDNN autotuning; the host's allocator keeps the
    memory a step frees, see `vtd.host_allocator`)."""
    requested = config.device
    if requested == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} asked for, but CUDA is not available")
    if config.precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
    if config.device_memory_gb is not None and device.type != "cuda":
        raise ValueError(
            f"device_memory_gb ({config.device_memory_gb:g}) caps CUDA memory, but this "
            "run is on the CPU; remove it, or cap host memory with the sweep's memory_cap_mb"
        )
    keep_freed_memory()
    if device.type == "cuda":
        setup_cuda(device, config.device_memory_gb, config.cudnn_benchmark)
    elif config.precision == "bf16" and not cpu_has_fast_bf16():
        logger.warning(
            "this CPU has no native bf16 (AVX512-BF16 / AMX): bf16 is emulated, "
            "likely slower than fp32"
        )
    return device


def setup_cuda(device: torch.device, memory_gb: float | None, cudnn_benchmark: bool) -> None:
    """Cap the process's memory on `device` at `memory_gb` (a smaller card emulated: the
    caching allocator raises a real out-of-memory error beyond it) and set cuDNN autotuning."""
    torch.backends.cudnn.benchmark = cudnn_benchmark
    if memory_gb is not None:
        total = torch.cuda.get_device_properties(device).total_memory
        fraction = memory_gb * 2**30 / total
        if fraction > 1:
            logger.warning(
                "device_memory_gb %g is more than the card's %.1f GB: not capped",
                memory_gb,
                total / 2**30,
            )
        torch.cuda.set_per_process_memory_fraction(min(fraction, 1.0), device)


def loader_workers(requested: int | None, device: torch.device) -> int:
    """Loader worker processes: as configured, else none on the CPU (they would compete with
    the model for the same cores) and up to 4 on CUDA (decoding overlaps the GPU's work)."""
    if requested is not None:
        return requested
    if device.type != "cuda":
        return 0
    return min(4, len(os.sched_getaffinity(0)))


def cpu_has_fast_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )
