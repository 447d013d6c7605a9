"""The frozen part's outputs, shared by the runs of a study: evaluation splits and training
windows (`TrainConfig.eval_cache_dir`, bounded by `eval_cache_gb`).

Under the published recipe the frozen part never changes during fine-tuning. A training
window (its clip, start, length and augmentation) is drawn from the seed, the epoch and the
clip's name, never from the batch or chunk size, so every cell of a batch x chunk grid with
the same seed and frozen weights feeds the same frames to the frozen part in every epoch. The
first run to encode a window writes its encodings; later runs read them instead of running
both ResNets, and only the ConvLSTM, decoder and optimizer remain to compute.

Exactness: the frozen part's output for one frame depends, in its last float bits, on how
many frames one call held (the CPU's convolution kernels block by batch). A run that reads
windows another cell encoded in other chunks therefore equals its standalone run up to that
rounding; a run with the same chunking reads exactly what it would have computed. A chunk of
a single frame is always encoded on the spot and never stored: the authors' single-frame
BatchNorm quirk makes its output another number. `share_training_features: false` turns the
training windows off (evaluation is exact either way: its chunking is the same in every run).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from vtd.data import Clip
from vtd.data.loader import ChunkTask, ClipWindow
from vtd.evaluate.shared_cache import (
    SharedFeatureCache,
    clips_fingerprint,
    evaluation_key,
    frozen_hash,
)
from vtd.model import VTD, EncodedFrames
from vtd.train.config import TrainConfig


@dataclass(frozen=True)
class SharedCaches:
    """Where a run shares the frozen part's outputs, and under which identity."""

    cache: SharedFeatureCache
    frozen: str
    """The frozen part's content hash."""


def shared_caches(config: TrainConfig, model: VTD) -> SharedCaches | None:
    """The study's shared cache for `model`'s frozen part, when `config` allows sharing."""
    if (
        config.freeze != "published"
        or config.eval_feature_cache == "off"
        or config.eval_cache_dir is None
        or config.eval_cache_gb <= 0
    ):
        return None
    cache = SharedFeatureCache(config.eval_cache_dir, int(config.eval_cache_gb * 2**30))
    return SharedCaches(cache, frozen_hash(model, model.frozen_parameters()))


@dataclass
class _Window:
    """One window's encodings in this batch: read from the cache, or being filled."""

    key: str
    length: int
    scene: torch.Tensor | None = None
    inout: torch.Tensor | None = None
    known: torch.Tensor | None = None
    """bool (length,): the frames whose encoding is held (from chunks of 2+ frames)."""
    from_cache: bool = False

    def has(self, position: int) -> bool:
        return self.known is not None and bool(self.known[position])

    def at(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The scene and in/out encodings of the window's frame at `position` (`has` it)."""
        assert self.scene is not None and self.inout is not None
        return self.scene[position], self.inout[position]

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the cache stores of the window (some frame kept)."""
        assert self.scene is not None and self.inout is not None and self.known is not None
        return {"scene": self.scene, "inout": self.inout, "known": self.known}

    def keep(self, position: int, scene: torch.Tensor, inout: torch.Tensor) -> None:
        if self.scene is None or self.inout is None or self.known is None:
            self.scene = scene.new_empty((self.length, *scene.shape), device="cpu")
            self.inout = inout.new_empty((self.length, *inout.shape), device="cpu")
            self.known = torch.zeros(self.length, dtype=torch.bool)
        self.scene[position] = scene
        self.inout[position] = inout
        self.known[position] = True


class TrainingFeatures:
    """Encodings of one run's training chunks, read from or written to the study's cache.

    `encode(task, compute, device)` is called for every chunk of an epoch in the loader's
    order; `compute()` runs the frozen part on the chunk when the cache cannot serve it.
    `stats` counts frames `read` and `encoded`, and windows `written`.
    """

    def __init__(
        self, shared: SharedCaches, clips: Sequence[Clip], config: TrainConfig, device: str
    ) -> None:
        self.cache = shared.cache
        self.clips = clips
        self.namespace = evaluation_key(
            kind="training window",
            weights=shared.frozen,
            model=config.model.model_dump(mode="json"),
            precision=config.precision,
            channels_last=config.channels_last,
            device=device,
        )
        self._fingerprints: dict[int, str] = {}
        self._batch: dict[int, _Window] = {}
        self.stats: Counter[str] = Counter()

    def _key(self, window: ClipWindow) -> str:
        index = window.clip_index
        if index not in self._fingerprints:
            self._fingerprints[index] = clips_fingerprint([self.clips[index]])
        text = (
            f"{self.namespace}|{self._fingerprints[index]}|{window.start}|{window.length}|"
            f"{window.augmentation!r}"
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _load(self, window: ClipWindow) -> _Window:
        key = self._key(window)
        found = self.cache.read_window(key)
        if found is None or len(found["known"]) != window.length:
            return _Window(key, window.length)
        return _Window(
            key, window.length, found["scene"], found["inout"], found["known"], from_cache=True
        )

    def encode(
        self, task: ChunkTask, compute: Callable[[], EncodedFrames], device: torch.device
    ) -> EncodedFrames:
        if task.first:
            self._batch = {window.clip_index: self._load(window) for window in task.windows}
        try:
            return self._encode(task, compute, device)
        finally:
            if task.last:
                self._write_batch()

    def _encode(
        self, task: ChunkTask, compute: Callable[[], EncodedFrames], device: torch.device
    ) -> EncodedFrames:
        frames = [
            (self._batch[window.clip_index], index - window.start)
            for window, index in task.frames()
        ]
        if len(frames) > 1 and all(window.has(position) for window, position in frames):
            self.stats["read"] += len(frames)
            scenes, inouts = zip(*(window.at(position) for window, position in frames), strict=True)
            return EncodedFrames(torch.stack(scenes).to(device), torch.stack(inouts).to(device))
        encoded = compute()
        self.stats["encoded"] += len(frames)
        if len(frames) > 1:  # a single frame's encoding is the quirk's: never kept
            for row, (window, position) in enumerate(frames):
                if not window.from_cache:
                    window.keep(position, encoded.scene[row], encoded.inout[row])
        return encoded

    def _write_batch(self) -> None:
        new = {
            window.key: window.tensors()
            for window in self._batch.values()
            if not window.from_cache and window.known is not None
        }
        self._batch = {}
        if new:
            self.stats["written"] += self.cache.write_windows(new)
