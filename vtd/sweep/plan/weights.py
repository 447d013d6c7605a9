"""Initial weights by name: `fresh`, `demo-pretrained`, or a checkpoint path.

`demo-pretrained` is the demo's stand-in for the authors' pretrained checkpoint: the model of
the sweep's `training.model`, trained with `freeze: none` on the demo's second data set (the
VideoAttentionTarget layout), made once by `vtd.train.finetune` in a trial process and cached
under `.cache/weights/` beside the sweep file, keyed by everything that shapes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vtd.demo.generate import DemoConfig, demo_folder_name
from vtd.model import ModelConfig
from vtd.sweep.plan.identity import portable_path
from vtd.train.config import TrainConfig

logger = logging.getLogger(__name__)

WEIGHTS_FRESH = "fresh"
WEIGHTS_DEMO = "demo-pretrained"
# The demo data set the pretrained weights are made on (the other one is the sweep's).
PRETRAIN_SOURCE = "videoattentiontarget"


class DemoPretrainedConfig(BaseModel):
    """How the demo's pretrained checkpoint is made (`freeze: none`, from fresh weights)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Everything trains from a fresh start, so it takes more epochs and a higher learning
    # rate than the published fine-tuning (10 x 5e-4 reach test AUC ~0.75 on the demo).
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=2, ge=1)
    chunk_size: int = Field(default=4, ge=1)
    lr: float = Field(default=5e-4, gt=0)
    seed: int = 0


@dataclass(frozen=True)
class InitialWeights:
    """Maps the `initial_weights` names of a sweep file to checkpoint paths."""

    folder: Path
    cache_dir: Path
    demo: DemoConfig | None
    pretrained: DemoPretrainedConfig
    model: ModelConfig

    @property
    def demo_key(self) -> str:
        content = {
            "demo": None if self.demo is None else self.demo.model_dump(mode="json"),
            "pretrained": self.pretrained.model_dump(mode="json"),
            "model": self.model.model_dump(mode="json"),
        }
        text = json.dumps(content, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    @property
    def demo_checkpoint(self) -> Path:
        return self.cache_dir / "weights" / f"{WEIGHTS_DEMO}-{self.demo_key}.pt"

    def check(self, label: object) -> None:
        """Raise ValueError unless `label` names weights this sweep can use."""
        if label is None or label == WEIGHTS_FRESH:
            return
        if not isinstance(label, str):
            raise ValueError(
                f"expected {WEIGHTS_FRESH}, {WEIGHTS_DEMO} or a checkpoint path, got {label!r}"
            )
        if label == WEIGHTS_DEMO:
            if self.demo is None:
                raise ValueError(f"{WEIGHTS_DEMO} needs the demo data: add a `demo:` section")
            return
        if not (self.folder / label).is_file():
            raise ValueError(f"no checkpoint file {self.folder / label}")

    def resolve(self, label: str | None) -> Path | None:
        """The checkpoint a label stands for; None for a fresh start."""
        if label is None or label == WEIGHTS_FRESH:
            return None
        if label == WEIGHTS_DEMO:
            return self.demo_checkpoint
        return (self.folder / label).resolve()

    def identity(self, label: str | None) -> str:
        """What the label means, independent of where the project is checked out."""
        if label is None or label == WEIGHTS_FRESH:
            return WEIGHTS_FRESH
        if label == WEIGHTS_DEMO:
            return f"{WEIGHTS_DEMO}:{self.demo_key}"
        return portable_path(self.folder / label, self.folder)

    def validate(self, raw: Mapping[str, Any]) -> TrainConfig:
        """A TrainConfig from raw fields whose `initial_weights` is still a label."""
        label = raw.get("initial_weights")
        return TrainConfig.model_validate({**raw, "initial_weights": self.resolve(label)})

    def pretrain_config(self) -> TrainConfig:
        """The training run that makes the demo's pretrained checkpoint."""
        if self.demo is None:
            raise ValueError(f"{WEIGHTS_DEMO} needs the demo data: add a `demo:` section")
        return TrainConfig.model_validate(
            {
                "data": {"sources": [PRETRAIN_SOURCE]},
                "data_dir": self.cache_dir / demo_folder_name(self.demo),
                "model": self.model,
                "initial_weights": None,
                "freeze": "none",
                "epochs": self.pretrained.epochs,
                "batch_size": self.pretrained.batch_size,
                "chunk_size": self.pretrained.chunk_size,
                "lr": self.pretrained.lr,
                "seed": self.pretrained.seed,
                "checkpoints": "best_last",
                "evaluate_initial": False,  # fresh weights: no baseline worth the time
                "output_dir": self.demo_checkpoint.with_suffix(".run"),
            }
        )

    def install_demo_checkpoint(self, made: Path) -> Path:
        """Put the checkpoint a pretraining run `made` in its cached place, atomically."""
        target = self.demo_checkpoint
        staging = target.with_suffix(".pt.tmp")
        shutil.copyfile(made, staging)
        staging.replace(target)
        logger.info("demo pretrained weights cached at %s", target)
        return target
