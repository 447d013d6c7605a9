"""Test helpers for the golden model vectors (tests/data/golden/README.md).

- ``golden_state_dict``: the "Deterministic weights" rule, under the authors' key names
  and with the shapes and dtypes of ``state_dict_keys.tsv``.
- ``golden_inputs``: the packed input frames drawn from a file's ``seed`` and ``lengths``.
- ``packed_batch_sizes`` / ``chunk_ranges``: how the frames are fed, chunk by chunk.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

GOLDEN_DIR = Path(__file__).parent / "data" / "golden"
KEYS_TSV = GOLDEN_DIR / "state_dict_keys.tsv"

_TSV_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


@dataclass(frozen=True)
class KeySpec:
    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype


def read_key_specs(path: Path = KEYS_TSV) -> list[KeySpec]:
    """The rows of ``state_dict_keys.tsv``: key, shape (``64x4x7x7`` or ``scalar``), dtype."""
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape", "dtype"], f"{path}: unexpected header"
    specs = []
    for line in lines[1:]:
        key, shape, dtype = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        specs.append(KeySpec(key, dims, _TSV_DTYPES[dtype]))
    return specs


def deterministic_tensor(spec: KeySpec) -> torch.Tensor:
    """One tensor of the README's deterministic weights (float64 for float keys)."""
    if not spec.dtype.is_floating_point:
        return torch.zeros(spec.shape, dtype=spec.dtype)
    rng = np.random.default_rng(zlib.crc32(spec.key.encode("utf-8")))
    if len(spec.shape) >= 2:
        numel = math.prod(spec.shape)
        bound = math.sqrt(6 / (numel / spec.shape[0]))
        values = rng.uniform(-bound, bound, size=spec.shape)
    elif spec.key.endswith((".weight", ".running_var")):
        values = rng.uniform(0.5, 1.5, size=spec.shape)
    else:
        values = rng.uniform(-0.1, 0.1, size=spec.shape)
    return torch.from_numpy(np.asarray(values, dtype=np.float64))


def golden_state_dict(path: Path = KEYS_TSV) -> dict[str, torch.Tensor]:
    return {spec.key: deterministic_tensor(spec) for spec in read_key_specs(path)}


def packed_batch_sizes(lengths: np.ndarray) -> list[int]:
    """batch_sizes of sequences of ``lengths`` (longest first), packed time-major."""
    lengths = np.asarray(lengths)
    return [int((lengths > t).sum()) for t in range(int(lengths.max()))]


def chunk_ranges(batch_sizes: list[int], chunk: int) -> list[tuple[list[int], int, int]]:
    """Per chunk of ``chunk`` time steps: its batch_sizes and its [start, stop) frame range."""
    chunks = []
    start = 0
    for t in range(0, len(batch_sizes), chunk):
        sizes = batch_sizes[t : t + chunk]
        chunks.append((sizes, start, start + sum(sizes)))
        start += sum(sizes)
    return chunks


@dataclass(frozen=True)
class GoldenInputs:
    images: torch.Tensor  # (N, 3, 224, 224) float64
    faces: torch.Tensor  # (N, 3, 224, 224) float64
    head_channels: torch.Tensor  # (N, 1, 224, 224) float64


def golden_inputs(seed: int, frames: int) -> GoldenInputs:
    """The README's inputs: image, face, then per frame x0, y0, w, h (this order of draws)."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((frames, 3, 224, 224))
    faces = rng.standard_normal((frames, 3, 224, 224))
    head = np.zeros((frames, 1, 224, 224))
    for frame in range(frames):
        x0 = rng.integers(0, 150)
        y0 = rng.integers(0, 150)
        w = rng.integers(20, 70)
        h = rng.integers(20, 70)
        head[frame, 0, y0 : y0 + h, x0 : x0 + w] = 1
    return GoldenInputs(torch.from_numpy(images), torch.from_numpy(faces), torch.from_numpy(head))
