"""The Bottleneck residual block of both pathways, with the authors' two quirks.

Quirks of the published ``BottleneckConvLSTM`` that change the numbers, reproduced so
that the authors' checkpoints give the authors' results:

- ``bn_ds``: an extra BatchNorm applied to the downsample branch's output (after the
  downsample's own BatchNorm). Every block has it in its state dict; only blocks with a
  downsample branch use it.
- The single-frame quirk (``single_frame_bn_quirk``): when the forward call holds a single
  frame (N == 1), the block skips bn1, bn2, bn3 and bn_ds. The authors added it so that
  training with one frame in a batch would not hit BatchNorm's batch statistics; it also
  applies in eval mode, where it changes the output. The BatchNorm inside ``downsample``
  is still applied. The golden vectors (tests/data/golden/model_seed1.npz, whose second
  chunk holds one frame) match only with exactly these layers skipped.
"""

from __future__ import annotations

from torch import Tensor, nn

from vtd.model.config import EXPANSION


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 convolutions with a residual connection.

    Attribute order fixes the state-dict key order of the authors' checkpoints:
    conv1, bn1, conv2, bn2, conv3, bn3, downsample, bn_ds.
    """

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        single_frame_bn_quirk: bool = True,
    ) -> None:
        super().__init__()
        out_channels = planes * EXPANSION
        self.single_frame_bn_quirk = single_frame_bn_quirk
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.bn_ds = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        skip_bn = self.single_frame_bn_quirk and x.shape[0] == 1

        def norm(bn: nn.BatchNorm2d, y: Tensor) -> Tensor:
            return y if skip_bn else bn(y)

        out = self.relu(norm(self.bn1, self.conv1(x)))
        out = self.relu(norm(self.bn2, self.conv2(out)))
        out = norm(self.bn3, self.conv3(out))
        residual = x if self.downsample is None else norm(self.bn_ds, self.downsample(x))
        return self.relu(out + residual)


def make_stage(
    in_channels: int,
    planes: int,
    blocks: int,
    stride: int,
    *,
    single_frame_bn_quirk: bool,
) -> nn.Sequential:
    """One stage: the first block changes stride/width (with a downsample), the rest keep it."""
    layers = [Bottleneck(in_channels, planes, stride, single_frame_bn_quirk=single_frame_bn_quirk)]
    layers += [
        Bottleneck(planes * EXPANSION, planes, single_frame_bn_quirk=single_frame_bn_quirk)
        for _ in range(1, blocks)
    ]
    return nn.Sequential(*layers)
