"""From an annotated frame to the network's inputs, with the per-clip training augmentation.

`draw_augmentation` draws, once per clip and epoch, what the published video loader drew once
per clip: a head-box expansion (jitter), a crop that keeps every head box and in-frame gaze
point of the clip's window, a horizontal flip, and colour factors. `prepare_frame` applies
one such draw to one frame: it decodes the image (JPEG at a reduced scale when the outputs
keep their resolution), resizes the scene region and crops the head, both to 224x224, and
returns the head box and gaze point in the coordinates of the (cropped, flipped) scene.
`to_model_inputs` turns a batch of prepared frames into normalised tensors.

The geometry follows the published loader step by step (jitter, crop, flip, face crop at
`int()` pixel corners of the box in the cropped and flipped image), so that the head crops
and head channels match the authors'; it runs on the decoded region only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vtd.data.config import AugmentationConfig
from vtd.data.errors import DataError
from vtd.data.images import open_rgb
from vtd.data.targets import INPUT_SIZE, gaze_heatmap, head_channel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUT_OF_FRAME = (-1.0, -1.0)

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ClipAugmentation:
    """One clip's augmentation for one epoch; the identity is `ClipAugmentation()`."""

    expansion: float = 0.0
    """Relative head-box expansion (the published jitter), applied as the authors did."""
    crop: tuple[int, int, int, int] | None = None
    """Scene region x0, y0, x1, y1 in image pixels; None: the whole image."""
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0

    @property
    def changes_colour(self) -> bool:
        return (self.brightness, self.contrast, self.saturation, self.hue) != (1.0, 1.0, 1.0, 0.0)


def _crop_region(
    boxes: np.ndarray, gaze: np.ndarray, size: tuple[int, int], uniforms: np.ndarray
) -> tuple[int, int, int, int]:
    """A random region holding every head box and in-frame gaze point, from 4 uniforms."""
    width, height = size
    inside = ~np.all(gaze == -1, axis=1)
    xs = np.concatenate([boxes[:, 0], boxes[:, 2], gaze[inside, 0]])
    ys = np.concatenate([boxes[:, 1], boxes[:, 3], gaze[inside, 1]])
    low_x, high_x = max(0.0, xs.min()), min(float(width), xs.max())
    low_y, high_y = max(0.0, ys.min()), min(float(height), ys.max())
    # As published: a top-left corner left of and above everything to keep, then a size
    # between what reaches the farthest thing to keep and the image border.
    left = uniforms[0] * low_x
    top = uniforms[1] * low_y
    right = high_x + uniforms[2] * (width - high_x)
    bottom = high_y + uniforms[3] * (height - high_y)
    x0, y0 = int(round(left)), int(round(top))
    x1 = min(width, max(x0 + 1, int(round(right))))
    y1 = min(height, max(y0 + 1, int(round(bottom))))
    return x0, y0, x1, y1


def draw_augmentation(
    boxes: np.ndarray,
    gaze: np.ndarray,
    image_size: tuple[int, int],
    config: AugmentationConfig,
    rng: np.random.Generator,
) -> ClipAugmentation:
    """One clip's augmentation from its window's boxes (T, 4) and gaze (T, 2), in pixels.

    The generator is always advanced by the same number of draws, so that changing one
    probability does not change the other draws of the same seed.
    """
    use = rng.random(4)  # jitter, crop, flip, colour
    expansion = rng.uniform(0.0, config.jitter_max)
    crop_uniforms = rng.random(4)
    factors = rng.random(3)
    hue = (2 * rng.random() - 1) * config.hue
    if not config.enabled:
        return ClipAugmentation()

    def between(bounds: tuple[float, float], uniform: float) -> float:
        return bounds[0] + uniform * (bounds[1] - bounds[0])

    colour = use[3] < config.colour_probability
    return ClipAugmentation(
        expansion=float(expansion) if use[0] < config.jitter_probability else 0.0,
        crop=(
            _crop_region(boxes, gaze, image_size, crop_uniforms)
            if use[1] < config.crop_probability
            else None
        ),
        flip=bool(use[2] < config.flip_probability),
        brightness=between(config.brightness, factors[0]) if colour else 1.0,
        contrast=between(config.contrast, factors[1]) if colour else 1.0,
        saturation=between(config.saturation, factors[2]) if colour else 1.0,
        hue=float(hue) if colour else 0.0,
    )


def expand_box(box: Box, k: float, image_size: tuple[int, int]) -> Box:
    """Grow a box by `k` of its size, clipped to the image, exactly as the published loader.

    Its sequential updates make the right and bottom edges grow by k(1+k) rather than k.
    """
    width, height = image_size
    x0, y0, x1, y1 = box
    x0 -= k * abs(x1 - x0)
    y0 -= k * abs(y1 - y0)
    x1 += k * abs(x1 - x0)
    y1 += k * abs(y1 - y0)
    return (
        float(np.clip(x0, 0, width)),
        float(np.clip(y0, 0, height)),
        float(np.clip(x1, 0, width)),
        float(np.clip(y1, 0, height)),
    )


@dataclass(frozen=True)
class PreparedFrame:
    """One frame ready for batching: 224x224 RGB uint8 arrays and scene-relative targets."""

    scene: np.ndarray
    face: np.ndarray
    box: Box
    """Head box in pixels of the (cropped, flipped) scene region."""
    region_size: tuple[float, float]
    gaze: tuple[float, float]
    """Normalised gaze in the scene region, (-1, -1) out of frame."""


def prepare_frame(
    path: Path,
    box: Box,
    gaze: tuple[float, float],
    image_size: tuple[int, int],
    augmentation: ClipAugmentation,
    size: int = INPUT_SIZE,
) -> PreparedFrame:
    """Decode one frame and apply its clip's augmentation (identity in evaluation)."""
    if augmentation.expansion:
        box = expand_box(box, augmentation.expansion, image_size)
    rx0, ry0, rx1, ry1 = augmentation.crop or (0, 0, image_size[0], image_size[1])
    region_w, region_h = rx1 - rx0, ry1 - ry0
    x0, y0, x1, y1 = box[0] - rx0, box[1] - ry0, box[2] - rx0, box[3] - ry0
    inside = tuple(gaze) != OUT_OF_FRAME
    gaze_x, gaze_y = gaze[0] - rx0, gaze[1] - ry0
    if augmentation.flip:
        x0, x1 = region_w - x1, region_w - x0
        gaze_x = region_w - gaze_x
    # The authors cropped the face at int() corners of the box in the cropped, flipped image.
    face_x0, face_y0 = int(x0), int(y0)
    face_x1, face_y1 = max(int(x1), face_x0 + 1), max(int(y1), face_y0 + 1)
    if augmentation.flip:
        face_x0, face_x1 = region_w - face_x1, region_w - face_x0
    face_box = (face_x0 + rx0, face_y0 + ry0, face_x1 + rx0, face_y1 + ry0)

    # The smallest decode that keeps both outputs at their full resolution.
    need = max(
        size / region_w, size / region_h, size / (face_x1 - face_x0), size / (face_y1 - face_y0)
    )
    need = min(1.0, need)
    decoded = open_rgb(path, (image_size[0] * need, image_size[1] * need))
    if decoded.size != tuple(image_size):
        raise DataError(
            f"image {path} is {decoded.size[0]}x{decoded.size[1]}, but its clip's first frame "
            f"is {image_size[0]}x{image_size[1]}"
        )
    scale = decoded.scale
    scene = decoded.image.resize(
        (size, size),
        Image.Resampling.BILINEAR,
        box=(rx0 * scale, ry0 * scale, rx1 * scale, ry1 * scale),
    )
    face = decoded.image.crop(tuple(round(value * scale) for value in face_box))
    face = face.resize((size, size), Image.Resampling.BILINEAR)
    if augmentation.flip:
        scene = scene.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    normalised = (gaze_x / region_w, gaze_y / region_h) if inside else OUT_OF_FRAME
    return PreparedFrame(
        scene=np.asarray(scene),
        face=np.asarray(face),
        box=(x0, y0, x1, y1),
        region_size=(float(region_w), float(region_h)),
        gaze=normalised,
    )


def _grey(images: torch.Tensor) -> torch.Tensor:
    """Luma (N, 1, H, W) with the weights of PIL's and torchvision's greyscale."""
    red, green, blue = images.unbind(dim=-3)
    return (0.2989 * red + 0.587 * green + 0.114 * blue).unsqueeze(-3)


def _blend(images: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * images + (1 - factor) * other).clamp_(0, 1)


def _adjust_colour(
    scenes: torch.Tensor, faces: torch.Tensor, augmentation: ClipAugmentation
) -> tuple[torch.Tensor, torch.Tensor]:
    """Brightness, contrast, saturation, hue on float 0..1 images, as on the whole frame.

    The formulas are torchvision's (`adjust_brightness`, ...). The published loader changed
    the colours of the whole frame and then cropped the face; contrast pulls towards the
    frame's mean grey, so the faces use their scene's mean.
    """
    scenes = (scenes * augmentation.brightness).clamp_(0, 1)
    faces = (faces * augmentation.brightness).clamp_(0, 1)
    # numpy's float64 sum, not torch's: a multi-threaded reduction's order (and last bits)
    # would depend on the thread count, and results must not depend on `num_workers`.
    grey = _grey(scenes).numpy().astype(np.float64)
    mean = torch.tensor(grey.mean(axis=(-3, -2, -1)), dtype=scenes.dtype).view(-1, 1, 1, 1)
    scenes = _blend(scenes, mean, augmentation.contrast)
    faces = _blend(faces, mean, augmentation.contrast)
    scenes = _blend(scenes, _grey(scenes), augmentation.saturation)
    faces = _blend(faces, _grey(faces), augmentation.saturation)
    if augmentation.hue:
        # Imported here: torchvision adds ~165 MB to every process that imports it, and a
        # hue shift is off by default (the published recipe has none).
        from torchvision.transforms.v2.functional import adjust_hue

        scenes = adjust_hue(scenes, augmentation.hue)
        faces = adjust_hue(faces, augmentation.hue)
    return scenes, faces


def _empty(shape: tuple[int, ...], shared: bool) -> torch.Tensor:
    """An uninitialised float32 tensor, in shared memory when `shared`.

    A loader worker builds its chunk's tensors there: the DataLoader then hands them to the
    main process as they are, where a private tensor would first be copied into shared
    memory (a transient second copy of every chunk, per worker).
    """
    if not shared:
        return torch.empty(shape, dtype=torch.float32)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * 4)  # as torch's collate does
    return torch.empty(0, dtype=torch.float32).set_(storage, 0, shape)


def _as_float(arrays: list[np.ndarray], shared: bool) -> torch.Tensor:
    """(N, H, W, 3) uint8 arrays -> (N, 3, H, W) float32 0..255, contiguous (fast ops)."""
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return _empty(tuple(pixels.shape), shared).copy_(pixels)


def _normalise(images: torch.Tensor, scale: float) -> torch.Tensor:
    """ImageNet normalisation of images holding values 0..scale, in place."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return images.mul_(1 / (scale * std)).sub_(mean / std)


@dataclass(frozen=True)
class ModelInputs:
    """A batch of frames as the network and the loss take them."""

    images: torch.Tensor  # (N, 3, 224, 224) float32, ImageNet-normalised
    head_channels: torch.Tensor  # (N, 1, 224, 224) float32
    faces: torch.Tensor  # (N, 3, 224, 224) float32, ImageNet-normalised
    heatmaps: torch.Tensor  # (N, 64, 64) float32
    inout: torch.Tensor  # (N,) float32, 1 = gaze target in frame
    gaze: torch.Tensor  # (N, 2) float32, normalised, -1 out of frame


def to_model_inputs(
    frames: Sequence[PreparedFrame],
    augmentations: Sequence[ClipAugmentation],
    shared: bool = False,
) -> ModelInputs:
    """Stack prepared frames; `augmentations[i]` is frame i's clip's (for its colours).

    `shared`: allocate the image tensors in shared memory (in a loader worker).
    """

    scenes = _as_float([frame.scene for frame in frames], shared)
    faces = _as_float([frame.face for frame in frames], shared)
    scale = 255.0
    if any(augmentation.changes_colour for augmentation in augmentations):
        scenes.div_(scale)
        faces.div_(scale)
        scale = 1.0
        # One frame at a time, though a clip's frames share the draw: grouping them per clip
        # measured slower (one frame's working set stays in the CPU cache).
        for i, augmentation in enumerate(augmentations):
            if augmentation.changes_colour:
                scene, face = _adjust_colour(scenes[i : i + 1], faces[i : i + 1], augmentation)
                scenes[i : i + 1], faces[i : i + 1] = scene, face
    gaze = torch.tensor([frame.gaze for frame in frames], dtype=torch.float32)
    boxes = np.array([frame.box for frame in frames], dtype=np.float64)
    region_sizes = np.array([frame.region_size for frame in frames], dtype=np.float64)
    return ModelInputs(
        images=_normalise(scenes, scale),
        head_channels=_empty((len(frames), 1, *scenes.shape[-2:]), shared).copy_(
            head_channel(boxes, region_sizes, size=scenes.shape[-1]).unsqueeze(1)
        ),
        faces=_normalise(faces, scale),
        heatmaps=gaze_heatmap(gaze),
        inout=(gaze[:, 0] != -1).to(torch.float32),
        gaze=gaze,
    )
