"""The published evaluation loop: every frame of every clip, chunked, hidden state carried.

`EvaluationData` turns a split's clips into chunks with the frozen part applied (from the
cache after the first pass, when caching is allowed, and from the study's shared cache when
another run already encoded the same frames from the same weights); `evaluate` runs the
trained part over them and returns the split's metrics and one row per clip.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from vtd.data import Clip, LoaderOptions, chunk_loader
from vtd.evaluate.cache import CacheWhere, EncodedChunk, FeatureCache, bytes_per_frame
from vtd.evaluate.metrics import auc, average_precision, gaze_distance
from vtd.evaluate.shared_cache import (
    CacheTooSmall,
    CacheWriter,
    SharedFeatureCache,
    clips_fingerprint,
    evaluation_key,
)
from vtd.loss import chunk_loss
from vtd.model import VTD, LSTMState
from vtd.numerics import NonFiniteOutput, all_finite

logger = logging.getLogger(__name__)

CachePolicy = Literal["auto", "memory", "disk", "off"]


@dataclass(frozen=True)
class SplitMetrics:
    """A split's published metrics: means over in-frame frames (AUC, distance), AP over all
    frames, and the training loss over the whole split."""

    auc: float
    dist: float
    ap: float
    loss: float
    frames: int
    in_frame: int

    def value(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class EvaluationResult:
    metrics: SplitMetrics
    rows: pd.DataFrame  # one row per clip: identity, frames, in-frame frames, AUC, distance


class EvaluationData:
    """One split's evaluation chunks, the frozen part applied, cached across epochs on demand.

    The cache is only correct while the frozen part does not change, so the caller decides
    (`cache="off"` when everything trains). With `shared_cache` and `frozen_weights` (the
    content hash of the weights the frozen part was loaded from), the first pass reads the
    encodings from the shared cache, or writes them there for the next run. `stats` counts
    chunks encoded here (`encoded`), read from the shared cache (`shared_read`), and entries
    found (`shared_hits`) and written (`shared_writes`).
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        *,
        batch_size: int,
        chunk_size: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        cache: CachePolicy = "off",
        cache_memory_mb: int = 1024,
        cache_dir: Path | None = None,
        head_expansion: float = 0.0,
        shared_cache: SharedFeatureCache | None = None,
        frozen_weights: str | None = None,
        channels_last: bool = False,
    ) -> None:
        self.clips = list(clips)
        self.loading = LoaderOptions(
            batch_size=batch_size,
            chunk_size=chunk_size,
            train=False,
            num_workers=num_workers,
            pin_memory=pin_memory,
            eval_head_expansion=head_expansion,
        )
        self._cache_policy = cache
        self._cache_memory_mb = cache_memory_mb
        self._cache_dir = cache_dir
        self._cache: FeatureCache | None = None
        self._shared = shared_cache if frozen_weights is not None else None
        self._frozen_weights = frozen_weights
        self.channels_last = channels_last
        self.stats: Counter[str] = Counter()

    @property
    def frames(self) -> int:
        return sum(len(clip.frames) for clip in self.clips)

    def _where(self, model: VTD) -> CacheWhere | None:
        if self._cache_policy == "off":
            return None
        if self._cache_policy != "auto":
            return self._cache_policy
        config = model.config
        size = self.frames * bytes_per_frame(
            config.encoder_channels, config.feature_size, config.heatmap_size
        )
        return "memory" if size <= self._cache_memory_mb * 2**20 else "disk"

    def chunks(
        self, model: VTD, device: torch.device, precision: str = "fp32"
    ) -> Iterator[EncodedChunk]:
        """Every chunk of the split, encoded by `model`'s frozen part (on `device`)."""
        if self._cache is not None and self._cache.complete:
            for chunk in self._cache:
                yield chunk.to(device)
            return
        if self._cache is not None:  # a pass that stopped half way: start the cache again
            self._cache.close()
            self._cache = None
        where = self._where(model)
        key = self._shared_key(model, device, precision) if where is not None else None
        if key is not None and where == "disk":
            where = None  # the shared entry is already a copy on disk
        if where is not None:
            self._cache = FeatureCache(where, self._cache_dir)
            logger.info("caching the frozen part's evaluation outputs (%s)", where)
        source = self._read_shared(key) if key is not None else None
        if source is None:
            source = self._encode(model, device, precision, key)
        for chunk in source:
            if self._cache is not None:
                self._cache.add(chunk)
            yield chunk.to(device)
        if self._cache is not None:
            self._cache.complete = True

    def _shared_key(self, model: VTD, device: torch.device, precision: str) -> str | None:
        if self._shared is None:
            return None
        return evaluation_key(
            weights=self._frozen_weights,
            model=model.config.model_dump(mode="json"),
            clips=clips_fingerprint(self.clips),
            batch_size=self.loading.batch_size,
            chunk_size=self.loading.chunk_size,
            head_expansion=self.loading.eval_head_expansion,
            precision=precision,
            channels_last=self.channels_last,
            device=device.type,
        )

    def _read_shared(self, key: str) -> Iterator[EncodedChunk] | None:
        assert self._shared is not None
        chunks = self._shared.read(key)
        if chunks is None:
            return None
        self.stats["shared_hits"] += 1
        logger.info("evaluation: the frozen part's outputs read from the shared cache (%s)", key)
        return self._counted(chunks)

    def _counted(self, chunks: Iterator[EncodedChunk]) -> Iterator[EncodedChunk]:
        for chunk in chunks:
            self.stats["shared_read"] += 1
            yield chunk

    def _encode(
        self, model: VTD, device: torch.device, precision: str, key: str | None
    ) -> Iterator[EncodedChunk]:
        writer: CacheWriter | None = None
        if key is not None and self._shared is not None:
            writer = self._shared.writer(key)
        loader = chunk_loader(self.clips, self.loading)
        try:
            for chunk in loader:
                chunk = chunk.to(device, non_blocking=bool(self.loading.pin_memory))
                images, faces = chunk.images, chunk.faces
                if self.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                    faces = faces.contiguous(memory_format=torch.channels_last)
                with torch.no_grad(), autocast(device, precision):
                    encoded = model.encode(images, chunk.head_channels, faces)
                self.stats["encoded"] += 1
                encoded_chunk = EncodedChunk.of(chunk, encoded)
                if writer is not None:
                    try:
                        writer.add(encoded_chunk)
                    except CacheTooSmall as error:
                        logger.warning(
                            "evaluation cache: one split's outputs exceed the bound (%.1f MB "
                            "so far); not shared",
                            error.args[0] / 2**20,
                        )
                        writer.abort()
                        writer = None
                    except OSError as error:  # a full disk costs the sharing, not the run
                        logger.warning("evaluation cache: not shared: %s", error)
                        writer.abort()
                        writer = None
                yield encoded_chunk
            if writer is not None:
                try:
                    writer.commit()
                    self.stats["shared_writes"] += 1
                except OSError as error:
                    logger.warning("evaluation cache: not shared: %s", error)
                    writer.abort()
                writer = None
        finally:
            if writer is not None:  # a pass that stopped half way
                writer.abort()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    """Mixed precision for `precision` (fp32: none; bf16 / fp16: autocast on `device`)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(
    model: VTD,
    data: EvaluationData,
    *,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> EvaluationResult:
    """The published evaluation of `model` on every frame of `data`, in eval mode.

    Per chunk, the state carried from the previous chunk of the same clips is cut to the
    clips still alive, as the authors' evaluation loop did. A heatmap or in/out logit that is
    NaN or infinite raises `NonFiniteOutput`: it never becomes a metric.
    """
    device = torch.device(device)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    per_frame: list[dict[str, np.ndarray]] = []
    logits, labels = [], []
    l2_sum = xent_sum = 0.0
    state: LSTMState | None = None
    previous_last = 0
    chunks = 0
    try:
        for chunk in data.chunks(model, device, precision):
            if chunk.first or state is None:
                state = None
            else:
                state = state.cut(min(int(chunk.batch_sizes[0]), previous_last))
            with autocast(device, precision):
                heatmap, inout, state = model.decode(chunk.encoded, state, chunk.batch_sizes)
            heatmap, inout = heatmap.float(), inout.float()
            if not all_finite(heatmap, inout):
                raise NonFiniteOutput(
                    f"the model's output is not finite (NaN or inf) in evaluation chunk "
                    f"{chunks + 1} of {len(data.clips)} clip(s): no metric computed"
                )
            chunks += 1
            previous_last = int(chunk.batch_sizes[-1])
            maps = heatmap.squeeze(1)
            in_frame = chunk.inout > 0.5
            frame_auc = torch.full_like(chunk.inout, float("nan"), dtype=torch.float64)
            frame_dist = frame_auc.clone()
            if in_frame.any():
                frame_auc[in_frame] = auc(maps[in_frame], chunk.gaze[in_frame])
                frame_dist[in_frame] = gaze_distance(maps[in_frame], chunk.gaze[in_frame])
            # sums, so that the split's loss weighs every frame once however it was chunked
            loss = chunk_loss(
                heatmap, chunk.heatmaps, inout, chunk.inout, in_frame_total=1.0, frames_total=1
            )
            l2_sum += float(loss.l2)
            xent_sum += float(loss.xent)
            logits.append(inout.reshape(-1).cpu())
            labels.append(chunk.inout.reshape(-1).cpu())
            per_frame.append(
                {
                    "clip_index": chunk.clip_index.cpu().numpy(),
                    "frame_index": chunk.frame_index.cpu().numpy(),
                    "in_frame": in_frame.cpu().numpy(),
                    "auc": frame_auc.cpu().numpy(),
                    "dist": frame_dist.cpu().numpy(),
                }
            )
    finally:
        for module, training in modes.items():
            module.train(training)
    return _summarise(data.clips, per_frame, logits, labels, l2_sum, xent_sum)


def _summarise(
    clips: Sequence[Clip],
    per_frame: list[dict[str, np.ndarray]],
    logits: list[torch.Tensor],
    labels: list[torch.Tensor],
    l2_sum: float,
    xent_sum: float,
) -> EvaluationResult:
    if not per_frame:
        raise ValueError("evaluation data holds no frames")
    frames = pd.DataFrame(
        {key: np.concatenate([p[key] for p in per_frame]) for key in per_frame[0]}
    )
    in_frame = int(frames["in_frame"].sum())
    metrics = SplitMetrics(
        auc=float(frames["auc"].mean()) if in_frame else float("nan"),
        dist=float(frames["dist"].mean()) if in_frame else float("nan"),
        ap=average_precision(torch.cat(logits), torch.cat(labels)),
        loss=(l2_sum / in_frame if in_frame else 0.0) + xent_sum / len(frames),
        frames=len(frames),
        in_frame=in_frame,
    )
    rows = (
        frames.groupby("clip_index")
        .agg(
            frames=("frame_index", "size"),
            in_frame=("in_frame", "sum"),
            auc=("auc", "mean"),
            dist=("dist", "mean"),
        )
        .reset_index()
    )
    identity = pd.DataFrame(
        [{"source": c.source, "show": c.show, "clip": c.clip, "person": c.person} for c in clips]
    )
    rows = identity.join(rows.set_index("clip_index"), how="right")
    return EvaluationResult(metrics=metrics, rows=rows.reset_index(drop=True))
