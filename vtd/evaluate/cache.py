"""Evaluation chunks with the frozen part already applied, kept across epochs of one run.

Under the published recipe nothing up to the encoder changes during fine-tuning, so the
frozen part's outputs for the evaluation frames are the same every epoch. Computing them once
and keeping them (with the chunk's labels) skips image decoding and both ResNets on every
later epoch: evaluation then costs only the ConvLSTM and the decoder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import torch

from vtd.data import Chunk
from vtd.model import EncodedFrames

CacheWhere = Literal["memory", "disk"]


@dataclass(frozen=True)
class EncodedChunk:
    """One evaluation chunk after the frozen part: what `VTD.decode` and the metrics need."""

    encoded: EncodedFrames
    batch_sizes: torch.Tensor
    first: bool
    heatmaps: torch.Tensor
    inout: torch.Tensor
    gaze: torch.Tensor
    clip_index: torch.Tensor
    frame_index: torch.Tensor

    @classmethod
    def of(cls, chunk: Chunk, encoded: EncodedFrames) -> EncodedChunk:
        """`chunk`'s packing and labels with the frozen part's outputs in place of its
        frames."""
        kept = {f.name: getattr(chunk, f.name) for f in fields(cls) if f.name != "encoded"}
        return cls(encoded=encoded, **kept)

    def to(self, device: torch.device | str) -> EncodedChunk:
        def move(value: object) -> object:
            if isinstance(value, torch.Tensor) and value is not self.batch_sizes:
                return value.to(device, non_blocking=True)
            if isinstance(value, EncodedFrames):
                return EncodedFrames(*(part.to(device, non_blocking=True) for part in value))
            return value

        return EncodedChunk(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


def bytes_per_frame(encoder_channels: int, feature_size: int, heatmap_size: int) -> int:
    """What one cached frame costs (float32 encodings and target heatmap), for sizing."""
    encoding = encoder_channels * feature_size**2 + feature_size**2
    return 4 * (encoding + heatmap_size**2 + 4)


class FeatureCache:
    """Chunks in the order they were first produced, in memory or in a temporary folder."""

    def __init__(self, where: CacheWhere, folder: Path | None = None) -> None:
        self.where = where
        self._chunks: list[EncodedChunk] = []
        self._files: list[Path] = []
        self._folder: Path | None = None
        if where == "disk":
            parent = folder if folder is not None else Path(tempfile.gettempdir())
            parent.mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="eval-cache-", dir=parent))
        self.complete = False

    def add(self, chunk: EncodedChunk) -> None:
        cpu_chunk = chunk.to("cpu")
        if self.where == "memory":
            self._chunks.append(cpu_chunk)
            return
        assert self._folder is not None
        path = self._folder / f"{len(self._files):06d}.pt"
        torch.save(_as_plain(cpu_chunk), path)
        self._files.append(path)

    def __iter__(self) -> Iterator[EncodedChunk]:
        if self.where == "memory":
            yield from self._chunks
            return
        for path in self._files:
            yield _from_plain(torch.load(path, map_location="cpu", weights_only=True))

    def close(self) -> None:
        self._chunks.clear()
        self._files.clear()
        self.complete = False
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _as_plain(chunk: EncodedChunk) -> dict[str, object]:
    # weights_only loading accepts tensors, dicts and bools, not our classes
    plain: dict[str, object] = {f.name: getattr(chunk, f.name) for f in fields(chunk)}
    plain["encoded"] = chunk.encoded._asdict()
    return plain


def _from_plain(plain: dict[str, object]) -> EncodedChunk:
    encoded = plain.pop("encoded")
    assert isinstance(encoded, dict)
    return EncodedChunk(encoded=EncodedFrames(**encoded), **plain)  # type: ignore[arg-type]
