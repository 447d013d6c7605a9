"""Chunks of packed frames for truncated back-propagation through time, in bounded memory.

`chunk_loader(clips, ...)` plans, in the main process, which clips go together and in which
order, each clip's window and each clip's augmentation; a torch `DataLoader` then builds one
`Chunk` per plan entry, in order, decoding only that chunk's frames (in worker processes when
`num_workers > 0`). Host memory is therefore bounded by batch size x chunk size x the
DataLoader's prefetch, whatever the clip length or the number of clips; results do not depend
on `num_workers`, because workers draw no random numbers.

Packing: within a batch, clips are sorted longest first and frames are time-major, all live
clips' frame t, then t+1, ... `batch_sizes[i]` is how many clips are alive at the chunk's
i-th time step, as `torch.nn.utils.rnn.PackedSequence` counts them.

Training (`train=True`): clips shuffled per epoch, each a random window of at most
`max_frames` frames with one augmentation draw, all from (seed, epoch, clip). Evaluation:
every frame of every clip, in the given clip order, no augmentation.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vtd.data.config import AugmentationConfig
from vtd.data.errors import DataError
from vtd.data.index import Clip
from vtd.data.transforms import (
    ClipAugmentation,
    PreparedFrame,
    draw_augmentation,
    prepare_frame,
    to_model_inputs,
)

logger = logging.getLogger(__name__)

_DEVICE_FIELDS = ("images", "head_channels", "faces", "heatmaps", "inout", "gaze")


@dataclass(frozen=True)
class ClipWindow:
    """The frames of one clip that a batch uses in this epoch, and their augmentation."""

    clip_index: int
    start: int
    length: int
    augmentation: ClipAugmentation


@dataclass(frozen=True)
class ChunkTask:
    """What one chunk holds: time steps [step_start, step_stop) of a batch of windows."""

    batch_index: int
    chunk_index: int
    windows: tuple[ClipWindow, ...]
    """The batch's clips, longest first."""
    step_start: int
    step_stop: int

    @property
    def first(self) -> bool:
        return self.chunk_index == 0

    @property
    def last(self) -> bool:
        return self.step_stop >= self.windows[0].length

    def batch_sizes(self) -> list[int]:
        """Clips alive at each time step of the chunk."""
        lengths = [window.length for window in self.windows]
        return [
            sum(length > step for length in lengths)
            for step in range(self.step_start, self.step_stop)
        ]

    def frames(self) -> list[tuple[ClipWindow, int]]:
        """(window, frame index in its clip) in packed, time-major order."""
        return [
            (window, window.start + step)
            for step, alive in zip(
                range(self.step_start, self.step_stop), self.batch_sizes(), strict=True
            )
            for window in self.windows[:alive]
        ]


@dataclass
class Chunk:
    """One chunk of packed frames of a batch of clips, and where each frame comes from.

    Frame tensors: `images`, `faces` (N, 3, 224, 224) and `head_channels` (N, 1, 224, 224)
    float32, `heatmaps` (N, 64, 64), `inout` (N,) 1.0 when the gaze target is in frame,
    `gaze` (N, 2) normalised, -1 out of frame. `batch_sizes` (steps,) int64 sums to N;
    `clip_index` (N,) indexes the loader's clips, `frame_index` (N,) the clip's frames.
    `first` marks the first chunk of a new batch of clips (the recurrent state starts at
    zeros), `last` its last chunk.
    """

    images: torch.Tensor
    head_channels: torch.Tensor
    faces: torch.Tensor
    heatmaps: torch.Tensor
    inout: torch.Tensor
    gaze: torch.Tensor
    batch_sizes: torch.Tensor
    clip_index: torch.Tensor
    frame_index: torch.Tensor
    batch_index: int
    chunk_index: int
    first: bool
    last: bool

    def __len__(self) -> int:
        return len(self.clip_index)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Chunk:
        """The frame tensors on `device`; `batch_sizes` and the indices stay on the CPU,
        where packing and bookkeeping want them."""
        moved = {
            name: getattr(self, name).to(device, non_blocking=non_blocking)
            for name in _DEVICE_FIELDS
        }
        return replace(self, **moved)

    def pin_memory(self) -> Chunk:
        """Page-locked copies, for fast asynchronous copies to a GPU (`DataLoader` calls it)."""
        return replace(self, **{name: getattr(self, name).pin_memory() for name in _DEVICE_FIELDS})


def _clip_rng(seed: int, epoch: int, clip: Clip) -> np.random.Generator:
    # Keyed by the clip's name, not its position: a clip's draw does not change when
    # other clips join or leave the split.
    return np.random.default_rng([seed, epoch, zlib.crc32(clip.key.encode("utf-8"))])


def _windows(
    clips: Sequence[Clip],
    *,
    train: bool,
    seed: int,
    epoch: int,
    max_frames: int,
    augmentation: AugmentationConfig,
    eval_head_expansion: float,
) -> list[ClipWindow]:
    if not train:
        identity = ClipAugmentation(expansion=eval_head_expansion)
        return [ClipWindow(i, 0, len(clip), identity) for i, clip in enumerate(clips)]
    order = np.random.default_rng([seed, epoch]).permutation(len(clips))
    windows = []
    for index in order.tolist():
        clip = clips[index]
        rng = _clip_rng(seed, epoch, clip)
        length = min(len(clip), max_frames)
        start = int(rng.integers(0, len(clip) - length + 1))
        frames = slice(start, start + length)
        drawn = draw_augmentation(
            clip.boxes[frames], clip.gaze[frames], clip.image_size, augmentation, rng
        )
        windows.append(ClipWindow(index, start, length, drawn))
    return windows


@dataclass(frozen=True)
class LoaderOptions:
    """How one pass over clips is planned (batch, chunk, window, augmentation) and loaded
    (workers, pinned memory, prefetch): what `plan_chunks` and `chunk_loader` take.

    `pin_memory` None: whether CUDA is available. `augmentation` None: the published one,
    used in training only; `eval_head_expansion` grows the head box for the face crop and
    head channel in evaluation (0: the published video protocol).
    """

    batch_size: int
    chunk_size: int
    train: bool
    seed: int = 0
    epoch: int = 0
    max_frames: int = 50
    augmentation: AugmentationConfig | None = None
    eval_head_expansion: float = 0.0
    drop_last: bool = False
    num_workers: int = 0
    pin_memory: bool | None = None
    prefetch_factor: int = 2


def _options(options: LoaderOptions | None, fields: dict[str, Any]) -> LoaderOptions:
    """`options` with `fields` replaced, or the options of `fields` alone."""
    if options is None:
        return LoaderOptions(**fields)
    return replace(options, **fields) if fields else options


def plan_chunks(
    clips: Sequence[Clip], options: LoaderOptions | None = None, /, **fields: Any
) -> list[ChunkTask]:
    """Every chunk of one pass over `clips`, in order: no pixels, only the plan.

    `options` (a `LoaderOptions`) with any of its `fields` given by name replaced."""
    options = _options(options, fields)
    batch_size, chunk_size, max_frames = options.batch_size, options.chunk_size, options.max_frames
    seed, epoch = options.seed, options.epoch
    if batch_size < 1 or chunk_size < 1 or max_frames < 1:
        raise ValueError(
            f"batch_size, chunk_size and max_frames must be >= 1, "
            f"got {batch_size}, {chunk_size}, {max_frames}"
        )
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got {seed}, {epoch}")
    windows = _windows(
        clips,
        train=options.train,
        seed=seed,
        epoch=epoch,
        max_frames=max_frames,
        augmentation=options.augmentation or AugmentationConfig(),
        eval_head_expansion=options.eval_head_expansion,
    )
    tasks = []
    for batch_index, start in enumerate(range(0, len(windows), batch_size)):
        batch = windows[start : start + batch_size]
        if options.drop_last and len(batch) < batch_size:
            break
        batch = tuple(sorted(batch, key=lambda window: -window.length))  # stable
        steps = batch[0].length
        for chunk_index, step in enumerate(range(0, steps, chunk_size)):
            tasks.append(
                ChunkTask(batch_index, chunk_index, batch, step, min(step + chunk_size, steps))
            )
    return tasks


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run the per-frame tensor work on one thread, as DataLoader workers do.

    The tensors are small (one 224x224 frame), and with two threads on a busy 2-core machine
    each op waited on the other thread: colour jitter ran 18x slower than on one thread.
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_chunk(clips: Sequence[Clip], task: ChunkTask) -> Chunk:
    """Decode and transform one chunk's frames (what a loader worker does)."""
    with _one_torch_thread():
        return _build_chunk(clips, task)


def _build_chunk(clips: Sequence[Clip], task: ChunkTask) -> Chunk:
    frames = task.frames()
    prepared: list[PreparedFrame] = []
    for window, index in frames:
        clip = clips[window.clip_index]
        try:
            prepared.append(
                prepare_frame(
                    clip.frames[index],
                    tuple(clip.boxes[index]),
                    tuple(clip.gaze[index]),
                    clip.image_size,
                    window.augmentation,
                )
            )
        except DataError as error:
            raise DataError(error.reason, clip.annotation_file, clip.lines[index]) from None
    in_worker = torch.utils.data.get_worker_info() is not None
    inputs = to_model_inputs(
        prepared, [window.augmentation for window, _ in frames], shared=in_worker
    )
    return Chunk(
        images=inputs.images,
        head_channels=inputs.head_channels,
        faces=inputs.faces,
        heatmaps=inputs.heatmaps,
        inout=inputs.inout,
        gaze=inputs.gaze,
        batch_sizes=torch.tensor(task.batch_sizes(), dtype=torch.int64),
        clip_index=torch.tensor([window.clip_index for window, _ in frames], dtype=torch.int64),
        frame_index=torch.tensor([index for _, index in frames], dtype=torch.int64),
        batch_index=task.batch_index,
        chunk_index=task.chunk_index,
        first=task.first,
        last=task.last,
    )


class _ChunkDataset(Dataset):
    """Item i is the plan's chunk i; a bad frame comes back as its `DataError`, to be raised
    in the main process without a worker's traceback around it."""

    def __init__(self, clips: Sequence[Clip], tasks: Sequence[ChunkTask]) -> None:
        self.clips = clips
        self.tasks = tasks

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index: int) -> Chunk | DataError:
        try:
            return build_chunk(self.clips, self.tasks[index])
        except DataError as error:
            return error


class ChunkLoader:
    """One pass over the plan's chunks, in order; iterate it once per epoch (or again)."""

    def __init__(
        self,
        clips: Sequence[Clip],
        tasks: Sequence[ChunkTask],
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
    ) -> None:
        self.clips = clips
        self.tasks = tasks
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def frames(self) -> int:
        """Frames in one pass."""
        return sum(sum(task.batch_sizes()) for task in self.tasks)

    @property
    def batches(self) -> int:
        return sum(task.first for task in self.tasks)

    def __iter__(self) -> Iterator[Chunk]:
        loader = DataLoader(
            _ChunkDataset(self.clips, self.tasks),
            batch_size=None,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            prefetch_factor=self.prefetch_factor if self.num_workers > 0 else None,
            # A private generator: iterating must not consume the caller's global torch RNG.
            generator=torch.Generator().manual_seed(0),
        )
        for item in loader:
            if isinstance(item, DataError):
                raise item
            yield item


def chunk_loader(
    clips: Sequence[Clip], options: LoaderOptions | None = None, /, **fields: Any
) -> ChunkLoader:
    """The chunks of one epoch (training) or one evaluation pass over `clips`: `options` (a
    `LoaderOptions`) with any of its `fields` given by name replaced."""
    options = _options(options, fields)
    tasks = plan_chunks(clips, options)
    pin_memory = options.pin_memory
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return ChunkLoader(
        clips,
        tasks,
        num_workers=options.num_workers,
        pin_memory=pin_memory,
        prefetch_factor=options.prefetch_factor,
    )


__all__ = [
    "Chunk",
    "ChunkLoader",
    "ChunkTask",
    "ClipWindow",
    "LoaderOptions",
    "build_chunk",
    "chunk_loader",
    "plan_chunks",
]
