"""TrainConfig: everything one fine-tuning run needs, validated before the run starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vtd.data.config import DataConfig
from vtd.evaluate.names import Metric
from vtd.model import ModelConfig

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class TrainConfig(BaseModel):
    """One VTD fine-tuning run: data, model, initial weights and the training recipe.

    Defaults are the published temporal fine-tuning (lr 5e-5, fc_inout at 5x, frozen up to
    the encoder). `batch_size` clips make one update; with `accumulation_steps` > 1 they are
    processed as that many micro-batches, so a card that holds 4 clips runs batch 16.
    """

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    data_dir: Path = Field(
        default=Path(), description="folder that relative paths in `data` are taken from"
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    initial_weights: Path | None = Field(
        default=None, description="an authors'-format checkpoint; None: fresh initialisation"
    )
    freeze: Literal["published", "none"] = Field(
        default="published",
        description="published: only the ConvLSTM, decoder and fc_inout train; none: everything",
    )
    batch_size: int = Field(default=4, ge=1, description="clips per optimizer update")
    chunk_size: int = Field(default=3, ge=1, description="frames per truncated-BPTT step")
    accumulation_steps: int = Field(default=1, ge=1, description="micro-batches per update")
    epochs: int = Field(default=15, ge=1)
    lr: float = Field(default=5e-5, gt=0)
    inout_lr_factor: float = Field(default=5.0, gt=0)
    seed: int = 0
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32", description="bf16 / fp16 autocast on CUDA (fp16 with a grad scaler)"
    )
    max_frames: int = Field(default=50, ge=1, description="longest training window per clip")
    num_workers: int | None = Field(
        default=None,
        ge=0,
        description="data loader worker processes; None: none on the CPU, up to 4 on CUDA "
        "(decoding then overlaps the GPU's work)",
    )
    channels_last: bool = Field(
        default=False,
        description="run the convolutions in channels-last memory format (faster with bf16 on "
        "CPUs with AVX512-BF16/AMX and on CUDA tensor cores)",
    )
    device_memory_gb: float | None = Field(
        default=None,
        gt=0,
        description="cap this run's CUDA memory (per-process fraction of the card), to "
        "reproduce a smaller GPU's out-of-memory cells on a larger one; CUDA only",
    )
    cudnn_benchmark: bool = Field(
        default=True, description="let cuDNN time its convolution algorithms (CUDA only)"
    )
    eval_batch_size: int = Field(
        default=4, ge=1, description="clips per evaluation batch, fixed so that runs compare"
    )
    eval_chunk_size: int = Field(default=3, ge=1, description="frames per evaluation step")
    evaluate_initial: bool = Field(
        default=True,
        description="evaluate the initial weights on validation and test before training: "
        "an epoch-0 record (the zero-shot baseline), never a training epoch",
    )
    checkpoints: Literal["every", "best_last", "none"] = "best_last"
    checkpoint_metric: Metric = Field(
        default="auc", description="what `best` means; read on validation, else on test"
    )
    eval_feature_cache: Literal["auto", "memory", "disk", "off"] = Field(
        default="auto",
        description="keep the frozen part's outputs for the evaluation frames after the first "
        "epoch (auto: in memory up to `eval_cache_memory_mb`, else on disk)",
    )
    eval_cache_memory_mb: int = Field(default=1024, ge=0)
    eval_cache_dir: Path | None = Field(
        default=None,
        description="a folder shared by runs for the frozen part's evaluation outputs, keyed by "
        "the weights' content hash, frames, model and evaluation settings (a sweep sets "
        "studies/<study>/eval_cache); None: kept within the run only",
    )
    eval_cache_gb: float = Field(
        default=8.0,
        ge=0,
        description="bound of `eval_cache_dir`, least recently used entries dropped; 0: no sharing",
    )
    share_training_features: bool = Field(
        default=True,
        description="also share the frozen part's outputs for training windows through "
        "`eval_cache_dir`: runs with the same seed, frozen weights and data read them instead "
        "of encoding (equal to a standalone run up to float rounding; see vtd.train.features)",
    )
    output_dir: Path = Field(default=Path("run"), description="checkpoints and their sidecars")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"expected auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @model_validator(mode="after")
    def _micro_batches_divide_batch(self) -> TrainConfig:
        if self.batch_size % self.accumulation_steps:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of accumulation_steps "
                f"{self.accumulation_steps}"
            )
        return self

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.accumulation_steps
