"""ConvLSTM over packed, time-major sequences, and the state carried between calls.

Same parameter names as ``torch.nn.LSTM`` (and as the authors' ``Conv2dLSTM``):
``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, with the
matrix products replaced by 3x3 convolutions (padding 1). Gate order i, f, g, o.

Packed semantics are those of PyTorch's packed LSTM: frames are ordered time step by
time step (``batch_sizes[t]`` frames at step t, the still-alive sequences, longest first);
at step t only the first ``batch_sizes[t]`` rows of the state advance, and the returned
state holds each sequence's state after its last step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LSTMState(NamedTuple):
    """Hidden and cell state, each (layers, sequences, channels, height, width)."""

    h: Tensor
    c: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.h.shape[1])

    def cut(self, n: int) -> LSTMState:
        """The state of the first ``n`` sequences (those still alive in the next chunk)."""
        if not 0 <= n <= self.batch_size:
            raise ValueError(f"cannot cut an LSTM state of {self.batch_size} sequences to {n}")
        return LSTMState(self.h[:, :n], self.c[:, :n])

    def detach(self) -> LSTMState:
        """The same values cut off from the autograd graph (truncated back-propagation)."""
        return LSTMState(self.h.detach(), self.c.detach())

    def to(self, *args: object, **kwargs: object) -> LSTMState:
        return LSTMState(self.h.to(*args, **kwargs), self.c.to(*args, **kwargs))

    @classmethod
    def zeros(
        cls,
        layers: int,
        batch_size: int,
        channels: int,
        size: int,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> LSTMState:
        shape = (layers, batch_size, channels, size, size)
        return cls(
            torch.zeros(shape, dtype=dtype, device=device),
            torch.zeros(shape, dtype=dtype, device=device),
        )


def check_batch_sizes(batch_sizes: Tensor | Sequence[int], frames: int) -> list[int]:
    """``batch_sizes`` as a list of ints, checked against the number of packed frames."""
    if isinstance(batch_sizes, Tensor):
        if batch_sizes.dim() != 1:
            raise ValueError(f"batch_sizes must be 1-D, got shape {tuple(batch_sizes.shape)}")
        sizes = [int(b) for b in batch_sizes.tolist()]
    else:
        sizes = [int(b) for b in batch_sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"batch_sizes must be non-empty and positive, got {sizes}")
    if any(later > earlier for earlier, later in zip(sizes, sizes[1:], strict=False)):
        raise ValueError(f"batch_sizes must not increase (longest sequence first), got {sizes}")
    if sum(sizes) != frames:
        raise ValueError(f"batch_sizes {sizes} sum to {sum(sizes)}, but {frames} frames were given")
    return sizes


class ConvLSTM(nn.Module):
    """A stack of convolutional LSTM layers, dropout between layers in training mode only."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 3,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.num_layers = num_layers
        self.dropout = dropout
        gates = 4 * hidden_channels
        k = kernel_size
        # Registered layer by layer in the order of the authors' state dict.
        for layer in range(num_layers):
            layer_in = in_channels if layer == 0 else hidden_channels
            self.register_parameter(
                f"weight_ih_l{layer}", nn.Parameter(torch.empty(gates, layer_in, k, k))
            )
            self.register_parameter(
                f"weight_hh_l{layer}", nn.Parameter(torch.empty(gates, hidden_channels, k, k))
            )
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(gates)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(gates)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # uniform(-1/sqrt(hidden), 1/sqrt(hidden)) for every weight and bias: what
        # torch.nn.LSTM does, and what the authors' Conv2dLSTM did (their model's own
        # initialisation loop leaves the ConvLSTM alone).
        bound = 1.0 / math.sqrt(self.hidden_channels)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def _layer_parameters(self, layer: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return (
            getattr(self, f"weight_ih_l{layer}"),
            getattr(self, f"weight_hh_l{layer}"),
            getattr(self, f"bias_ih_l{layer}"),
            getattr(self, f"bias_hh_l{layer}"),
        )

    def forward(
        self,
        x: Tensor,
        batch_sizes: Tensor | Sequence[int],
        state: LSTMState | None = None,
    ) -> tuple[Tensor, LSTMState]:
        """Run packed frames ``x`` (N, C, H, W) through all layers.

        Returns the last layer's output for every frame (N, hidden, H, W) and the state
        after each sequence's last step (layers, batch_sizes[0], hidden, H, W).
        """
        sizes = check_batch_sizes(batch_sizes, x.shape[0])
        if state is None:
            state = LSTMState.zeros(
                self.num_layers,
                sizes[0],
                self.hidden_channels,
                x.shape[-1],
                dtype=x.dtype,
                device=x.device,
            )
        expected = (self.num_layers, sizes[0], self.hidden_channels, *x.shape[2:])
        if tuple(state.h.shape) != expected or tuple(state.c.shape) != expected:
            raise ValueError(
                f"LSTM state has shape {tuple(state.h.shape)}, expected {expected} "
                "(cut the state to the sequences alive in this chunk)"
            )
        padding = self.kernel_size // 2
        layer_input = x
        last_h: list[Tensor] = []
        last_c: list[Tensor] = []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._layer_parameters(layer)
            # The input convolution does not depend on the recurrence: one call for all frames.
            input_gates = F.conv2d(layer_input, w_ih, b_ih, padding=padding)
            h, c = state.h[layer], state.c[layer]
            outputs: list[Tensor] = []
            ended_h: list[Tensor] = []
            ended_c: list[Tensor] = []
            offset = 0
            for alive in sizes:
                if alive < h.shape[0]:
                    # The last rows' sequences have ended: keep their final state.
                    ended_h.append(h[alive:])
                    ended_c.append(c[alive:])
                    h, c = h[:alive], c[:alive]
                gates = input_gates[offset : offset + alive] + F.conv2d(
                    h, w_hh, b_hh, padding=padding
                )
                offset += alive
                in_gate, forget_gate, cell_gate, out_gate = gates.chunk(4, dim=1)
                c = torch.sigmoid(forget_gate) * c + torch.sigmoid(in_gate) * torch.tanh(cell_gate)
                h = torch.sigmoid(out_gate) * torch.tanh(c)
                outputs.append(h)
            ended_h.append(h)
            ended_c.append(c)
            last_h.append(torch.cat(ended_h[::-1]))
            last_c.append(torch.cat(ended_c[::-1]))
            layer_input = torch.cat(outputs)
            if layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, p=self.dropout, training=self.training)
        return layer_input, LSTMState(torch.stack(last_h), torch.stack(last_c))
