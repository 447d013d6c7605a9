"""The published temporal fine-tuning of VTD, as one function: `finetune(config, on_epoch)`.

Features, and how each is switched (all in `TrainConfig`):
- Initial weights: an authors'-format checkpoint, loaded partially with a report of what was
  missing or unexpected (`initial_weights`), or a fresh initialisation (None).
- Freezing (`freeze`): `published` trains only the ConvLSTM, deconv1-3, conv4 (at `lr`) and
  fc_inout (at `lr * inout_lr_factor`); the frozen part runs under `no_grad`, so it holds no
  gradients and stores no activations. `none` trains everything (used to make the demo's
  pretrained weights). BatchNorm layers stay in eval mode throughout, as published.
- Truncated back-propagation through time: batches of clips (training windows of at most
  `max_frames` frames) are fed `chunk_size` frames at a time, the ConvLSTM state carried
  between chunks, detached and cut to the clips still alive; one update per chunk.
- Loss: the published chunk loss (heatmap MSE x 10,000 on in-frame frames + in/out BCE x 100),
  except that a chunk without in-frame frames adds no heatmap loss instead of NaN.
- Gradient accumulation (`accumulation_steps`): each chunk's `batch_size` clips run as
  micro-batches whose losses are scaled to sum to the whole batch's loss, so the update
  equals one of the whole batch.
- Mixed precision (`precision`): bf16 or fp16 autocast on CUDA, fp16 with a grad scaler;
  bf16 also on the CPU (fast where the CPU has AVX512-BF16 or AMX). `channels_last` runs the
  convolutions in channels-last memory format.
- Finite numbers only: a chunk whose loss (or, without a grad scaler, whose gradients) holds
  a NaN or an infinity raises `NonFiniteLoss(epoch, chunk)` before the optimiser applies it.
- Device (`device: auto` picks CUDA when present) and seeds (`seed`: a CPU run repeats exactly).
  On CUDA: `device_memory_gb` caps the process's memory (a smaller card emulated), cuDNN
  autotuning (`cudnn_benchmark`), pinned host memory with non-blocking copies, and loader
  workers unless `num_workers` says otherwise.
- Evaluation of the initial weights before training (`evaluate_initial`, on by default): an
  epoch-0 record with validation and test metrics and no training loss, handed to `on_epoch`
  like the others and kept apart in `TrainResult.initial` (never checkpointed, never "best").
- Evaluation after every epoch on the validation and test splits (`vtd.evaluate`), the frozen
  part's outputs cached after the first evaluation (`eval_feature_cache`).
- Runs of a study share the frozen part's outputs through `eval_cache_dir` (bounded by
  `eval_cache_gb`; `vtd.train.features`): evaluation splits, and training windows
  (`share_training_features`), keyed by the frozen part's content, frames and settings.
- Checkpoints (`checkpoints`): every epoch, or best (by `checkpoint_metric`) and last, in the
  authors' format `{'model': state_dict}` with a JSON sidecar of config and metrics.
- `on_epoch(record)` sees each epoch's record, epoch 0 first; returning True (or raising
  StopTraining) ends the run after that epoch (from epoch 1: epoch 0 is not training).
"""

from __future__ import annotations

import functools
import logging
import random
import resource
import time

import numpy as np
import torch

from vtd.data import Chunk, Clip, chunk_loader, load_splits
from vtd.evaluate.loop import EvaluationData, autocast, evaluate
from vtd.evaluate.names import HIGHER_IS_BETTER
from vtd.loss import chunk_loss
from vtd.model import (
    VTD,
    EncodedFrames,
    LoadReport,
    LSTMState,
    load_checkpoint,
)
from vtd.numerics import NonFiniteLoss
from vtd.train.chunks import channels_last_inputs, loader_options, micro_batches
from vtd.train.config import TrainConfig
from vtd.train.device import loader_workers, setup_device
from vtd.train.features import TrainingFeatures, shared_caches
from vtd.train.records import EpochRecord, OnEpoch, StopTraining, TrainResult, describe
from vtd.train.saving import same_checkpoint, save_epoch

logger = logging.getLogger(__name__)


def finetune(config: TrainConfig, on_epoch: OnEpoch | None = None) -> TrainResult:
    """Fine-tune VTD as `config` says, handing every epoch's record to `on_epoch`."""
    run = FineTuning(config)
    try:
        return run.train(on_epoch)
    finally:
        run.close()


class FineTuning:
    """One run: `__init__` sets up device, seed, model, optimizer and data, in that order."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = setup_device(config)
        self._setup_seed()
        self.model, self.load_report = self._setup_model()
        self.optimizer = self._setup_optimizer()
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=config.precision == "fp16" and self.device.type == "cuda"
        )
        self.train_clips, self.evaluation = self._setup_data()
        # ConvLSTM state per micro-batch, carried between the chunks of a batch of clips
        self._states: list[LSTMState | None] = []
        self._last_alive: list[int] = []

    # --- setup ----------------------------------------------------------------------------
    def _setup_seed(self) -> None:
        random.seed(self.config.seed)
        np.random.seed(self.config.seed)
        torch.manual_seed(self.config.seed)

    def _setup_model(self) -> tuple[VTD, LoadReport | None]:
        model = VTD(self.config.model)
        report = None
        if self.config.initial_weights is not None:
            report = load_checkpoint(model, self.config.initial_weights)
        if self.config.freeze == "published":
            for parameter in model.frozen_parameters():
                parameter.requires_grad_(False)
        if self.config.channels_last:
            return model.to(self.device, memory_format=torch.channels_last), report
        return model.to(self.device), report

    def _setup_optimizer(self) -> torch.optim.Optimizer:
        if self.config.freeze == "published":
            groups = self.model.trainable_groups(self.config.lr, self.config.inout_lr_factor)
        else:
            groups = [{"params": list(self.model.parameters()), "lr": self.config.lr}]
        # fused: one pass over each parameter instead of a dozen (4x faster on the CPU
        # for the ConvLSTM's 38M parameters); the same update up to float rounding
        return torch.optim.Adam(groups, lr=self.config.lr, fused=True)

    def _setup_data(self) -> tuple[list[Clip], dict[str, EvaluationData]]:
        config = self.config
        splits = load_splits(config.data, config.data_dir)
        if not splits.train:
            raise ValueError("the training split holds no clips")
        cache = config.eval_feature_cache if config.freeze == "published" else "off"
        shared = shared_caches(config, self.model)
        self.training_features = (
            TrainingFeatures(shared, splits.train, config, self.device.type)
            if shared is not None and config.share_training_features
            else None
        )
        evaluation = {
            name: EvaluationData(
                clips,
                batch_size=config.eval_batch_size,
                chunk_size=config.eval_chunk_size,
                num_workers=loader_workers(config.num_workers, self.device),
                pin_memory=self.device.type == "cuda",
                cache=cache,
                cache_memory_mb=config.eval_cache_memory_mb,
                cache_dir=config.output_dir,
                head_expansion=config.data.eval_head_expansion,
                shared_cache=shared.cache if shared is not None else None,
                frozen_weights=shared.frozen if shared is not None else None,
                channels_last=config.channels_last,
            )
            for name, clips in (("validation", splits.validation), ("test", splits.test))
            if clips
        }
        return list(splits.train), evaluation

    # --- the loop -------------------------------------------------------------------------
    def train(self, on_epoch: OnEpoch | None = None) -> TrainResult:
        result = TrainResult(load_report=self.load_report)
        if self.config.evaluate_initial and self.evaluation:
            started = time.perf_counter()
            self._reset_peak_memory()
            result.initial = self._record(0, None, started)
            logger.info("epoch 0 (initial weights): %s", describe(result.initial))
            # Not a training epoch: the pruner's "stop" is for trained epochs only.
            self._report(on_epoch, result.initial)
        best: float | None = None
        for epoch in range(1, self.config.epochs + 1):
            started = time.perf_counter()
            self._reset_peak_memory()
            losses = self._train_epoch(epoch)
            record = self._record(epoch, losses, started)
            record, best = self._checkpoint(record, best, result)
            result.records.append(record)
            logger.info("epoch %d: %s", epoch, describe(record))
            if self.training_features is not None:
                stats = self.training_features.stats
                logger.info(
                    "training frames so far: %d read from the study's cache, %d encoded",
                    stats["read"],
                    stats["encoded"],
                )
            if self._report(on_epoch, record) and epoch < self.config.epochs:
                result.stopped_early = True
                break
        return result

    @staticmethod
    def _report(on_epoch: OnEpoch | None, record: EpochRecord) -> bool:
        """Hand `record` to the callback; True when it asks to stop."""
        try:
            return bool(on_epoch(record)) if on_epoch is not None else False
        except StopTraining:
            return True

    def _reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _record(
        self, epoch: int, losses: tuple[float, float, float] | None, started: float
    ) -> EpochRecord:
        """Evaluate every split and make the epoch's record (`losses` None: not trained)."""
        metrics = {
            name: evaluate(
                self.model, data, device=self.device, precision=self.config.precision
            ).metrics
            for name, data in self.evaluation.items()
        }
        loss, l2, xent = losses if losses is not None else (None, None, None)
        return EpochRecord(
            epoch=epoch,
            train_loss=loss,
            train_l2=l2,
            train_xent=xent,
            validation=metrics.get("validation"),
            test=metrics.get("test"),
            seconds=time.perf_counter() - started,
            # the process's peak so far: a trial is one process, so it is the trial's
            peak_host_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            peak_device_mb=(
                torch.cuda.max_memory_allocated(self.device) / 2**20
                if self.device.type == "cuda"
                else 0.0
            ),
        )

    def _set_train_mode(self) -> None:
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()

    def _train_epoch(self, epoch: int) -> tuple[float, float, float]:
        config = self.config
        loader = chunk_loader(
            self.train_clips,
            loader_options(config, train=True, epoch=epoch),
            num_workers=loader_workers(config.num_workers, self.device),
            pin_memory=self.device.type == "cuda",
        )
        totals = np.zeros(3)
        updates = 0
        # before the first encoding: BatchNorm must not run in training mode, even once
        self._set_train_mode()
        for task, chunk in zip(loader.tasks, loader, strict=True):
            chunk = chunk.to(self.device, non_blocking=True)
            if config.channels_last:
                chunk = channels_last_inputs(chunk)
            updates += 1
            encoded = None
            if self.training_features is not None:
                encoded = self.training_features.encode(
                    task, functools.partial(self._encode, chunk), self.device
                )
            totals += self.step(chunk, epoch=epoch, index=updates, encoded=encoded)
        if updates == 0:
            raise ValueError("the training split produced no chunks")
        loss, l2, xent = totals / updates
        return float(loss), float(l2), float(xent)

    def _encode(self, chunk: Chunk) -> EncodedFrames:
        """The frozen part on the whole chunk in one call, as in the authors' loop: the
        single-frame BatchNorm quirk depends on how many frames a call holds, and
        micro-batching must not change it. No gradients, no stored activations."""
        with torch.no_grad(), autocast(self.device, self.config.precision):
            return self.model.encode(chunk.images, chunk.head_channels, chunk.faces)

    def step(
        self,
        chunk: Chunk,
        *,
        epoch: int = 0,
        index: int = 0,
        encoded: EncodedFrames | None = None,
    ) -> np.ndarray:
        """One optimizer update on a training chunk; returns its loss (total, l2, xent).

        `epoch` and `index` (the chunk's 1-based place in the epoch) only name the chunk in a
        `NonFiniteLoss`, raised before the update when its loss or gradients are not finite.
        `encoded`: the frozen part's outputs for the chunk when already known (shared).

        The chunk's clips run as micro-batches whose gradients add up to the whole batch's;
        each micro-batch carries its own ConvLSTM state from the previous chunk of the same
        clips, detached (truncated back-propagation) and cut to the clips still alive.
        """
        self._set_train_mode()
        parts = micro_batches(
            chunk.batch_sizes, self.config.micro_batch_size, self.config.batch_size
        )
        if chunk.first:
            self._states = [None] * len(parts)
            self._last_alive = [0] * len(parts)
        states, last_alive = self._states, self._last_alive
        in_frame_total = float(chunk.inout.sum())
        frames_total = len(chunk.inout)
        if self.config.freeze == "published" and encoded is None:
            encoded = self._encode(chunk)
        sums = np.zeros(3)
        for m, part in enumerate(parts):
            if part is None:
                continue
            # one micro-batch is the whole chunk: a view, not a copy of every frame tensor
            rows = part.rows.to(self.device) if len(parts) > 1 else slice(None)
            state = states[m]
            if state is not None:
                state = state.cut(min(int(part.batch_sizes[0]), last_alive[m]))
            with autocast(self.device, self.config.precision):
                if self.config.freeze == "published":
                    assert encoded is not None
                    frames = EncodedFrames(encoded.scene[rows], encoded.inout[rows])
                    heatmap, inout, state = self.model.decode(frames, state, part.batch_sizes)
                else:
                    heatmap, inout, state = self.model(
                        chunk.images[rows],
                        chunk.head_channels[rows],
                        chunk.faces[rows],
                        state=state,
                        batch_sizes=part.batch_sizes,
                    )
                loss = chunk_loss(
                    heatmap.float(),
                    chunk.heatmaps[rows],
                    inout.float(),
                    chunk.inout[rows],
                    in_frame_total=in_frame_total,
                    frames_total=frames_total,
                )
            self.scaler.scale(loss.total).backward()
            states[m] = state.detach()
            last_alive[m] = int(part.batch_sizes[-1])
            sums += [float(part_loss.detach()) for part_loss in loss]
        self._check_finite(sums, epoch, index)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return sums

    def _check_finite(self, sums: np.ndarray, epoch: int, index: int) -> None:
        """Raise NonFiniteLoss, the gradients dropped, if this update would apply NaN or inf."""
        what = None
        if not np.isfinite(sums).all():
            what = "loss"
        elif not self.scaler.is_enabled():
            # An fp16 grad scaler skips steps with infinite gradients by design; otherwise a
            # finite loss can still have non-finite gradients. One fused norm: cheap.
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if grads and not torch.isfinite(torch.nn.utils.get_total_norm(grads)):
                what = "gradient"
        if what is not None:
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLoss(epoch, index, what)

    # --- checkpoints ----------------------------------------------------------------------
    def _selection_metrics(self, record: EpochRecord) -> tuple[str, float]:
        split = record.validation or record.test
        if split is None:
            assert record.train_loss is not None  # only trained epochs are checkpointed
            return "train_loss", record.train_loss
        metric = self.config.checkpoint_metric
        return metric, split.value(metric)

    def _checkpoint(
        self, record: EpochRecord, best: float | None, result: TrainResult
    ) -> tuple[EpochRecord, float | None]:
        policy = self.config.checkpoints
        if policy == "none":
            return record, best
        folder = self.config.output_dir
        name, value = self._selection_metrics(record)
        higher = HIGHER_IS_BETTER.get(name, False)
        improved = best is None or (value > best if higher else value < best)
        if policy == "every":
            path = folder / f"epoch_{record.epoch:03d}.pt"
            save_epoch(self.model, path, record, self.config)
            if improved:
                result.best_checkpoint = path
        else:
            path = save_epoch(self.model, folder / "last.pt", record, self.config)
            if improved:
                result.best_checkpoint = same_checkpoint(path, folder / "best.pt")
        result.last_checkpoint = path
        record = EpochRecord(**{**record.__dict__, "checkpoint": path})
        return record, value if improved else best

    def close(self) -> None:
        for data in self.evaluation.values():
            data.close()
