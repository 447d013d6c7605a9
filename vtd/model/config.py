"""ModelConfig: every size the VTD network needs, derived from a variant name.

Like nanoGPT's GPTConfig, the config states the shapes and the network reads them;
nothing in `network.py` hard-codes a channel count.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Bottleneck blocks widen their planes by 4 (ResNet-50).
EXPANSION = 4


class ModelConfig(BaseModel):
    """The VTD network: which size, and whether to reproduce the authors' BatchNorm quirk.

    - ``variant="full"``: the published sizes (two ResNet-50 pathways plus a fifth stage,
      base width 64; the authors' checkpoints load into it).
    - ``variant="small"``: the same code with base width 16 and one block per stage, for
      CPU demos and fast tests (about 100x fewer weights).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: Literal["full", "small"] = "full"
    single_frame_bn_quirk: bool = Field(
        default=True,
        description="Skip the residual blocks' and the decoder's BatchNorm layers in a forward "
        "call that holds a single frame, as the authors' model does.",
    )
    lstm_layers: int = Field(default=2, ge=1)
    lstm_dropout: float = Field(default=0.5, ge=0.0, lt=1.0)

    # --- sizes fixed by the published architecture -----------------------------------
    @property
    def image_size(self) -> int:
        """Side of the square scene image, head channel and face crop."""
        return 224

    @property
    def head_pool_size(self) -> int:
        """Side of the head channel after three 3x3/2 max-pools (224 -> 28)."""
        return self.image_size // 8

    @property
    def feature_size(self) -> int:
        """Side of the feature maps after the pathways (224 / 32 = 7)."""
        return self.image_size // 32

    @property
    def attention_cells(self) -> int:
        """Number of cells of the attention map (7 x 7 = 49)."""
        return self.feature_size**2

    @property
    def heatmap_size(self) -> int:
        """Side of the output heatmap (7 -> 15 -> 31 -> 64 through the decoder)."""
        return 64

    # --- sizes that depend on the variant ----------------------------------------------
    @property
    def base_width(self) -> int:
        """Channels of the stem convolution and planes of the first stage."""
        return 64 if self.variant == "full" else 16

    @property
    def stage_blocks(self) -> tuple[int, ...]:
        """Bottleneck blocks per stage: ResNet-50's [3, 4, 6, 3] plus the fifth stage."""
        return (3, 4, 6, 3, 2) if self.variant == "full" else (1, 1, 1, 1, 1)

    @property
    def stage_planes(self) -> tuple[int, ...]:
        """Planes per stage; the fifth stage narrows back to 4x the base width."""
        w = self.base_width
        return (w, 2 * w, 4 * w, 8 * w, 4 * w)

    @property
    def stage_strides(self) -> tuple[int, ...]:
        return (1, 2, 2, 2, 1)

    @property
    def feature_channels(self) -> int:
        """Channels out of each pathway (1024 for full)."""
        return self.stage_planes[-1] * EXPANSION

    @property
    def scene_face_channels(self) -> int:
        """Attended scene features concatenated with the face features (2048 for full)."""
        return 2 * self.feature_channels

    @property
    def attention_in_features(self) -> int:
        """Pooled head channel plus averaged face features (784 + 1024 = 1808 for full)."""
        return self.head_pool_size**2 + self.feature_channels

    @property
    def encoder_mid_channels(self) -> int:
        """First 1x1 compression of the heatmap branch (1024 for full)."""
        return self.scene_face_channels // 2

    @property
    def encoder_channels(self) -> int:
        """Channels of the scene encoding, the ConvLSTM input and hidden state (512 for full)."""
        return self.scene_face_channels // 4

    @property
    def inout_mid_channels(self) -> int:
        """First 1x1 compression of the in/out branch (512 for full)."""
        return self.scene_face_channels // 4

    @property
    def lstm_kernel_size(self) -> int:
        return 3

    @property
    def decoder_channels(self) -> tuple[int, int, int, int]:
        """Channels into and out of deconv1, deconv2, deconv3 (512, 256, 128, 1 for full)."""
        c = self.encoder_channels
        return (c, c // 2, c // 4, 1)
