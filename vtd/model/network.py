"""VTD: the spatio-temporal gaze-target network of Chong et al. (CVPR 2020).

The authors' ``ModelSpatioTemporal(num_lstm_layers=2)``, with their state-dict keys:

    scene image + head channel -> scene pathway ----------------------------+
    face crop -> face pathway -> avg-pool --+                               |
    head channel -> 3 max-pools (28x28) ----+-> attn (Linear) -> softmax 7x7 * scene features
    cat(attended scene features, face features) -> encoder (1x1 convs) -> ConvLSTM -> decoder
                                               -> in/out encoder (1x1 convs) -> fc_inout

``encode`` is everything up to and including the encoders (the part the published
recipe freezes); ``decode`` is the ConvLSTM, the deconvolution decoder and ``fc_inout``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vtd.model.blocks import make_stage
from vtd.model.config import EXPANSION, ModelConfig
from vtd.model.convlstm import ConvLSTM, LSTMState

# Modules the published temporal fine-tuning updates, and the one it updates at 5x lr.
_TRAINED_AT_LR = ("convlstm_scene", "deconv1", "deconv2", "deconv3", "conv4")
_TRAINED_AT_INOUT_LR = ("fc_inout",)


class EncodedFrames(NamedTuple):
    """Output of the frozen part, per packed frame."""

    scene: Tensor  # (N, encoder_channels, 7, 7): the ConvLSTM input
    inout: Tensor  # (N, 49): the in/out encoding, before fc_inout


class VTD(nn.Module):
    """The spatio-temporal VTD network over packed, time-major frames."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else ModelConfig()
        width = config.base_width
        # Attribute order below is the authors' state-dict order. The two pathways
        # (`_pathway`), scene (image and head channel) and face: conv1_<name>, bn1_<name>,
        # layer1_<name> ... layer5_<name>.
        for name, in_channels in (("scene", 4), ("face", 3)):
            conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            setattr(self, f"conv1_{name}", conv1)
            setattr(self, f"bn1_{name}", nn.BatchNorm2d(width))
            for stage, layer in enumerate(_make_stages(config), start=1):
                setattr(self, f"layer{stage}_{name}", layer)

        self.attn = nn.Linear(config.attention_in_features, config.attention_cells)

        both, mid, enc = (
            config.scene_face_channels,
            config.encoder_mid_channels,
            config.encoder_channels,
        )
        self.compress_conv1 = nn.Conv2d(both, mid, kernel_size=1, bias=False)
        self.compress_bn1 = nn.BatchNorm2d(mid)
        self.compress_conv2 = nn.Conv2d(mid, enc, kernel_size=1, bias=False)
        self.compress_bn2 = nn.BatchNorm2d(enc)

        inout_mid = config.inout_mid_channels
        self.compress_conv1_inout = nn.Conv2d(both, inout_mid, kernel_size=1, bias=False)
        self.compress_bn1_inout = nn.BatchNorm2d(inout_mid)
        self.compress_conv2_inout = nn.Conv2d(inout_mid, 1, kernel_size=1, bias=False)
        self.compress_bn2_inout = nn.BatchNorm2d(1)
        self.fc_inout = nn.Linear(config.attention_cells, 1)

        self.convlstm_scene = ConvLSTM(
            enc,
            enc,
            kernel_size=config.lstm_kernel_size,
            num_layers=config.lstm_layers,
            dropout=config.lstm_dropout,
        )

        c0, c1, c2, c3 = config.decoder_channels
        self.deconv1 = nn.ConvTranspose2d(c0, c1, kernel_size=3, stride=2)
        self.deconv_bn1 = nn.BatchNorm2d(c1)
        self.deconv2 = nn.ConvTranspose2d(c1, c2, kernel_size=3, stride=2)
        self.deconv_bn2 = nn.BatchNorm2d(c2)
        self.deconv3 = nn.ConvTranspose2d(c2, c3, kernel_size=4, stride=2)
        self.deconv_bn3 = nn.BatchNorm2d(c3)
        self.conv4 = nn.Conv2d(c3, 1, kernel_size=1)

        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        # The authors' initialisation: convolutions (and transposed convolutions) normal with
        # std sqrt(2 / (k*k*out_channels)) (Kaiming, fan-out), BatchNorm weight 1 and bias 0.
        # Linear layers, convolution biases and the ConvLSTM keep PyTorch's defaults (the
        # ConvLSTM's own uniform(+-1/sqrt(hidden)), see convlstm.py), as in their code.
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # --- the frozen part ----------------------------------------------------------------
    def _pathway(self, x: Tensor, name: str) -> Tensor:
        x = getattr(self, f"conv1_{name}")(x)
        x = self.maxpool(F.relu(getattr(self, f"bn1_{name}")(x)))
        for stage in range(1, len(self.config.stage_blocks) + 1):
            x = getattr(self, f"layer{stage}_{name}")(x)
        return x

    def encode(self, images: Tensor, head_channels: Tensor, faces: Tensor) -> EncodedFrames:
        """Frames (N,3,224,224), head channels (N,1,224,224), face crops (N,3,224,224).

        With ``single_frame_bn_quirk`` the residual blocks skip BatchNorm when this call
        holds one frame, so call it with the frames of one chunk, as ``forward`` does, to get
        the authors' numbers.
        """
        self._check_inputs(images, head_channels, faces)
        n = images.shape[0]
        face_features = self._pathway(faces, "face")
        head_reduced = self.maxpool(self.maxpool(self.maxpool(head_channels))).reshape(n, -1)
        face_reduced = face_features.mean(dim=(2, 3))
        attention = self.attn(torch.cat((head_reduced, face_reduced), dim=1))
        size = self.config.feature_size
        attention = F.softmax(attention, dim=1).view(n, 1, size, size)

        scene_features = self._pathway(torch.cat((images, head_channels), dim=1), "scene")
        scene_face = torch.cat((attention * scene_features, face_features), dim=1)

        inout = F.relu(self.compress_bn1_inout(self.compress_conv1_inout(scene_face)))
        inout = F.relu(self.compress_bn2_inout(self.compress_conv2_inout(inout)))
        scene = F.relu(self.compress_bn1(self.compress_conv1(scene_face)))
        scene = F.relu(self.compress_bn2(self.compress_conv2(scene)))
        return EncodedFrames(scene=scene, inout=inout.reshape(n, -1))

    # --- the trained part ---------------------------------------------------------------
    def decode(
        self,
        encoded: EncodedFrames,
        state: LSTMState | None = None,
        batch_sizes: Tensor | Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor, LSTMState]:
        """ConvLSTM over the packed frames, decoder and in/out head.

        Returns heatmaps (N,1,64,64) (raw), in/out logits (N,1) and the state after each
        sequence's last step. ``batch_sizes=None`` means one time step: every frame is a
        sequence of its own.
        """
        n = encoded.scene.shape[0]
        sizes = batch_sizes if batch_sizes is not None else [n]
        x, state = self.convlstm_scene(encoded.scene, sizes, state)  # checks `sizes`
        # The authors' single-frame quirk also skips the decoder's BatchNorm (see blocks.py).
        skip_bn = self.config.single_frame_bn_quirk and n == 1
        for deconv, bn in (
            (self.deconv1, self.deconv_bn1),
            (self.deconv2, self.deconv_bn2),
            (self.deconv3, self.deconv_bn3),
        ):
            x = deconv(x)
            x = F.relu(x if skip_bn else bn(x))
        heatmap = self.conv4(x)
        inout = self.fc_inout(encoded.inout)
        return heatmap, inout, state

    def forward(
        self,
        images: Tensor,
        head_channels: Tensor,
        faces: Tensor,
        state: LSTMState | None = None,
        batch_sizes: Tensor | Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor, LSTMState]:
        """Packed time-major frames of one chunk -> (heatmap, in/out logit, LSTMState).

        ``state`` is the previous chunk's state cut to the sequences alive in this chunk
        (``None``: zeros); ``batch_sizes[t]`` is the number of sequences at time step t.
        """
        return self.decode(self.encode(images, head_channels, faces), state, batch_sizes)

    # --- the published split for fine-tuning --------------------------------------------
    def _top_level_parameters(self, names: Sequence[str]) -> list[nn.Parameter]:
        return [p for name in names for p in getattr(self, name).parameters()]

    def trainable_groups(self, lr: float, inout_lr_factor: float = 5.0) -> list[dict[str, Any]]:
        """Optimizer parameter groups of the published temporal fine-tuning.

        ConvLSTM, deconv1-3 and conv4 at ``lr``; fc_inout at ``lr * inout_lr_factor``.
        """
        return [
            {"params": self._top_level_parameters(_TRAINED_AT_LR), "lr": lr},
            {
                "params": self._top_level_parameters(_TRAINED_AT_INOUT_LR),
                "lr": lr * inout_lr_factor,
            },
        ]

    def frozen_parameters(self) -> list[nn.Parameter]:
        """Every parameter the published fine-tuning leaves unchanged.

        Both pathways, attention and both encoders (everything ``encode`` uses), and the
        decoder's BatchNorm weights, which the authors' optimizer also leaves out (gradients
        still flow through those layers to the ConvLSTM).
        """
        trained = {id(p) for group in self.trainable_groups(1.0) for p in group["params"]}
        return [p for p in self.parameters() if id(p) not in trained]

    def _check_inputs(self, images: Tensor, head_channels: Tensor, faces: Tensor) -> None:
        size = self.config.image_size
        for name, tensor, channels in (
            ("images", images, 3),
            ("head_channels", head_channels, 1),
            ("faces", faces, 3),
        ):
            if tensor.dim() != 4 or tuple(tensor.shape[1:]) != (channels, size, size):
                raise ValueError(
                    f"{name} must be (N, {channels}, {size}, {size}), got {tuple(tensor.shape)}"
                )
        if not images.shape[0] == head_channels.shape[0] == faces.shape[0]:
            raise ValueError(
                "images, head_channels and faces hold different numbers of frames: "
                f"{images.shape[0]}, {head_channels.shape[0]}, {faces.shape[0]}"
            )


def _make_stages(config: ModelConfig) -> list[nn.Sequential]:
    stages = []
    in_channels = config.base_width
    for planes, blocks, stride in zip(
        config.stage_planes, config.stage_blocks, config.stage_strides, strict=True
    ):
        stages.append(
            make_stage(
                in_channels,
                planes,
                blocks,
                stride,
                single_frame_bn_quirk=config.single_frame_bn_quirk,
            )
        )
        in_channels = planes * EXPANSION
    return stages
