"""The published per-frame targets: gaze heatmap, head-position channel, head-track smoothing.

Each function reproduces the authors' formula, rounding included, because the metrics and the
loss are computed against these maps and our numbers must be comparable with the paper's
(`tests/data/golden/utils_*.npz` hold the authors' outputs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where a tensor is made: indexing data needs none
    import torch

ArrayLike = "np.ndarray | torch.Tensor"

HEATMAP_SIZE = 64
HEATMAP_SIGMA = 3
INPUT_SIZE = 224
SMOOTHING_WINDOW = 11


def _as_numpy(values: ArrayLike) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch.Tensor
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _draw_gaussian(heatmap: np.ndarray, x: float, y: float, sigma: int) -> None:
    """Add one unnormalised Gaussian at pixel (x, y), clipped to the map, as `draw_labelmap` did.

    The corners use Python's `int`, which truncates towards zero, exactly like the published
    code: near the top or left edge this shifts the window, and the shift is part of the target.
    """
    height, width = heatmap.shape
    top_left = (int(x - 3 * sigma), int(y - 3 * sigma))
    bottom_right = (int(x + 3 * sigma + 1), int(y + 3 * sigma + 1))
    if top_left[0] >= width or top_left[1] >= height or bottom_right[0] < 0 or bottom_right[1] < 0:
        return
    size = 6 * sigma + 1
    grid = np.arange(0, size, 1, float)
    centre = size // 2
    gaussian = np.exp(-((grid - centre) ** 2 + (grid[:, None] - centre) ** 2) / (2 * sigma**2))
    g_x = max(0, -top_left[0]), min(bottom_right[0], width) - top_left[0]
    g_y = max(0, -top_left[1]), min(bottom_right[1], height) - top_left[1]
    img_x = max(0, top_left[0]), min(bottom_right[0], width)
    img_y = max(0, top_left[1]), min(bottom_right[1], height)
    heatmap[img_y[0] : img_y[1], img_x[0] : img_x[1]] += gaussian[g_y[0] : g_y[1], g_x[0] : g_x[1]]


def gaze_heatmap(
    points: ArrayLike, size: int = HEATMAP_SIZE, sigma: int = HEATMAP_SIGMA
) -> torch.Tensor:
    """Target heatmaps (N, size, size) float32 for normalised gaze points (N, 2).

    A Gaussian of `sigma` pixels (window 6*sigma+1) at `point * size`, the map divided by its
    maximum. A point whose window lies wholly outside the map (an out-of-frame gaze, -1, -1)
    leaves an all-zero map. The published code accumulated in float32; so do we.
    """
    coords = _as_numpy(points).astype(np.float64).reshape(-1, 2)
    maps = np.zeros((len(coords), size, size), dtype=np.float32)
    for heatmap, (x, y) in zip(maps, coords, strict=True):
        _draw_gaussian(heatmap, x * size, y * size, sigma)
        peak = heatmap.max()
        if peak > 0:
            heatmap /= peak
    import torch

    return torch.from_numpy(maps)


def head_channel(boxes: ArrayLike, image_sizes: ArrayLike, size: int = INPUT_SIZE) -> torch.Tensor:
    """Head-position channels (N, size, size) float32: ones over the head box on the input grid.

    Boxes (N, 4) are pixel x0, y0, x1, y1 in images of `image_sizes` (N, 2) width, height; the
    box is scaled to the grid, truncated to integers and clipped to 0..size-1 as published.
    """
    box = _as_numpy(boxes).astype(np.float64).reshape(-1, 4)
    wh = _as_numpy(image_sizes).astype(np.float64).reshape(-1, 2)
    scale = np.concatenate([wh, wh], axis=1)
    grid_box = np.clip((box / scale * size).astype(int), 0, size - 1)
    channels = np.zeros((len(box), size, size), dtype=np.float32)
    for channel, (x0, y0, x1, y1) in zip(channels, grid_box, strict=True):
        channel[y0:y1, x0:x1] = 1
    import torch

    return torch.from_numpy(channels)


def smooth_track(track: ArrayLike, window: int = SMOOTHING_WINDOW) -> np.ndarray:
    """Moving average of a head track (T,) or (T, K) along time, ends padded with copies.

    The published loader padded each column with window//2 copies of its first and last values
    and convolved with a flat kernel, so the output has the input's length.
    """
    if window % 2 != 1:
        raise ValueError(f"smoothing window must be odd, got {window}")
    values = _as_numpy(track).astype(np.float64)
    columns = values.reshape(len(values), -1)
    half = window // 2
    kernel = np.ones(window) / window
    smoothed = np.empty_like(columns)
    for k in range(columns.shape[1]):
        padded = np.concatenate(
            [np.repeat(columns[:1, k], half), columns[:, k], np.repeat(columns[-1:, k], half)]
        )
        smoothed[:, k] = np.convolve(padded, kernel, mode="valid")
    return smoothed.reshape(values.shape)
