"""Per-clip augmentation draws and the per-frame transforms against their references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as tvf

from vtd.data import AugmentationConfig
from vtd.data.transforms import (
    ClipAugmentation,
    _adjust_colour,
    draw_augmentation,
    expand_box,
)

BOXES = np.array([[10.0, 10.0, 20.0, 24.0], [12.0, 10.0, 22.0, 24.0]])
GAZE = np.array([[50.0, 30.0], [-1.0, -1.0]])


def test_colour_changes_match_torchvision_on_the_scene():
    generator = torch.Generator().manual_seed(0)
    scenes = torch.rand(2, 3, 32, 32, generator=generator)
    faces = torch.rand(2, 3, 8, 8, generator=generator)
    change = ClipAugmentation(brightness=1.3, contrast=0.6, saturation=1.4, hue=0.05)
    got_scenes, got_faces = _adjust_colour(scenes, faces, change)
    expected = tvf.adjust_brightness(scenes, 1.3)
    expected = tvf.adjust_contrast(expected, 0.6)
    expected = tvf.adjust_saturation(expected, 1.4)
    expected = tvf.adjust_hue(expected, 0.05)
    torch.testing.assert_close(got_scenes, expected, atol=1e-5, rtol=0)
    # Faces: the same, but contrast pulls towards their scene's mean grey, not their own.
    bright = tvf.adjust_brightness(faces, 1.3)
    scene_mean = tvf.rgb_to_grayscale(tvf.adjust_brightness(scenes, 1.3)).mean(
        dim=(-3, -2, -1), keepdim=True
    )
    contrasted = (0.6 * bright + 0.4 * scene_mean).clamp(0, 1)
    expected_faces = tvf.adjust_hue(tvf.adjust_saturation(contrasted, 1.4), 0.05)
    torch.testing.assert_close(got_faces, expected_faces, atol=1e-5, rtol=0)


def test_box_expansion_is_the_published_sequential_update():
    x0, y0, x1, y1 = 10.0, 20.0, 30.0, 60.0
    k = 0.1
    # The authors updated x_min first and then used the new width for x_max.
    new_x0, new_y0 = x0 - k * (x1 - x0), y0 - k * (y1 - y0)
    new_x1, new_y1 = x1 + k * (x1 - new_x0), y1 + k * (y1 - new_y0)
    assert expand_box((x0, y0, x1, y1), k, (640, 480)) == pytest.approx(
        (new_x0, new_y0, new_x1, new_y1)
    )
    assert expand_box((1.0, 1.0, 639.0, 470.0), 0.2, (640, 480)) == (0.0, 0.0, 640.0, 480.0)


def draw(config: AugmentationConfig, seed: int = 0) -> ClipAugmentation:
    return draw_augmentation(BOXES, GAZE, (64, 48), config, np.random.default_rng(seed))


def test_draws_are_in_the_configured_ranges():
    config = AugmentationConfig(
        jitter_probability=1, crop_probability=1, flip_probability=1, colour_probability=1
    )
    for seed in range(20):
        drawn = draw(config, seed)
        assert 0 <= drawn.expansion <= config.jitter_max
        assert drawn.flip
        assert 0.5 <= drawn.brightness <= 1.5 and 0.5 <= drawn.saturation <= 1.5
        x0, y0, x1, y1 = drawn.crop
        assert 0 <= x0 <= 10 and 0 <= y0 <= 10, "the crop starts before every head box"
        assert x1 >= 50 and y1 >= 30, "and reaches the in-frame gaze point"
        assert x1 <= 64 and y1 <= 48
        assert drawn.hue == 0.0, "no hue shift unless configured"


def test_probabilities_zero_or_disabled_give_the_identity():
    none = AugmentationConfig(
        jitter_probability=0, crop_probability=0, flip_probability=0, colour_probability=0
    )
    assert all(draw(none, seed) == ClipAugmentation() for seed in range(5))
    assert all(
        draw(AugmentationConfig(enabled=False), seed) == ClipAugmentation() for seed in range(5)
    )


def test_changing_one_probability_keeps_the_other_draws():
    base = AugmentationConfig(
        jitter_probability=1, crop_probability=1, flip_probability=0, colour_probability=1
    )
    flipped = base.model_copy(update={"flip_probability": 1})
    for seed in range(5):
        a, b = draw(base, seed), draw(flipped, seed)
        assert (a.expansion, a.crop, a.brightness) == (b.expansion, b.crop, b.brightness)
        assert not a.flip and b.flip
