"""Targets, metrics, smoothing and loss reproduce the authors' own outputs.

Every `tests/data/golden/utils_*.npz` is checked, taking all inputs from the file itself, so
that vectors made with other seeds and shapes can be dropped in beside the bundled one.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from vtd.data.targets import gaze_heatmap, head_channel, smooth_track
from vtd.evaluate import auc, gaze_distance, inout_ap
from vtd.train import chunk_loss

GOLDEN = sorted((Path(__file__).parent / "data" / "golden").glob("utils_*.npz"))


def assert_matches(actual, expected, rel: float = 1e-9) -> None:
    """Equal to `rel` of the expected array's range (of its magnitude for a constant array)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    scale = np.ptp(expected) if expected.size > 1 else 0.0
    scale = scale or max(float(np.abs(expected).max(initial=0.0)), 1.0)
    worst = float(np.abs(actual - expected).max(initial=0.0))
    assert worst <= rel * scale, f"max difference {worst:.3g} > {rel:g} x range {scale:.3g}"


@pytest.fixture(params=GOLDEN, ids=lambda path: path.stem)
def golden(request) -> dict[str, np.ndarray]:
    with np.load(request.param) as data:
        return dict(data)


def test_golden_files_present():
    assert GOLDEN, "tests/data/golden/utils_*.npz missing"


def test_gaze_heatmaps(golden):
    assert_matches(gaze_heatmap(golden["heatmap_points"]), golden["heatmaps"])


def test_head_channels(golden):
    channels = head_channel(golden["head_boxes"], golden["image_sizes"])
    assert_matches(channels, golden["head_channels"])


def test_auc_and_distance(golden):
    maps = torch.from_numpy(golden["pred_heatmaps"])
    gaze = torch.from_numpy(golden["pred_gaze"])
    assert_matches(auc(maps, gaze), golden["auc"])
    assert_matches(gaze_distance(maps, gaze), golden["dist"])


def test_inout_average_precision(golden):
    ap = inout_ap(
        torch.from_numpy(golden["inout_logits"]), torch.from_numpy(golden["inout_labels"])
    )
    assert_matches(ap, golden["inout_ap"])


def test_track_smoothing(golden):
    assert_matches(smooth_track(golden["track"]), golden["track_smoothed"])


def test_chunk_loss(golden):
    loss = chunk_loss(
        torch.from_numpy(golden["loss_deconv"]),
        torch.from_numpy(golden["loss_gt"]),
        torch.from_numpy(golden["loss_inout_logits"]),
        torch.from_numpy(golden["loss_inout_labels"]),
    )
    assert_matches(loss.l2.item(), golden["loss_l2"])
    assert_matches(loss.xent.item(), golden["loss_xent"])
    assert_matches(loss.total.item(), golden["loss_l2"] + golden["loss_xent"])
