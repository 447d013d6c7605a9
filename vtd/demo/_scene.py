"""One synthetic clip for the demo data: a person at a table looks at coloured objects.

The cues are deliberately strong and simple so that the small model learns them in a few CPU
epochs: a plain wall, a brown table, a few saturated objects of distinct colours and shapes on
it, and above the table a head (a dark hair disk with a skin-coloured face disk on it) whose face,
eyes and nose are shifted towards the gaze direction. Objects always lie below the head; when the
person looks out of frame the face turns upwards or sideways, so in/out is visible in the face.
Between gaze segments the head turns over a few frames and the label switches half way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

RGB = tuple[int, int, int]

# Saturated, far apart in hue, none of them a skin, hair, wall or table colour.
OBJECT_COLOURS: tuple[RGB, ...] = (
    (220, 30, 30),
    (30, 170, 40),
    (40, 70, 230),
    (240, 210, 20),
    (200, 40, 200),
    (20, 200, 210),
)
OBJECT_SHAPES = ("square", "disk", "triangle")
SHIRT_COLOURS: tuple[RGB, ...] = ((90, 90, 110), (110, 80, 80), (80, 100, 90), (70, 70, 70))
HAIR_COLOUR: RGB = (60, 40, 25)
SKIN_COLOUR: RGB = (235, 190, 150)
EYE_COLOUR: RGB = (20, 20, 20)
NOSE_COLOUR: RGB = (170, 100, 70)
OUT_OF_FRAME = -1

# Geometry as fractions of the frame (x of the width, y of the height, sizes of the height).
HEAD_RADIUS = 0.11
HEAD_BOX_MARGIN = 0.15
OBJECT_SIZE = 0.14
TABLE_TOP = 0.62
FACE_SHIFT = 0.2  # face disk centre moves this fraction of the head radius towards the gaze
FEATURE_SHIFT = 0.3  # eyes and nose move this much further
TURN_FRAMES = 2
MIN_SEGMENT_FRAMES = 4


@dataclass(frozen=True)
class SceneObject:
    centre: tuple[int, int]
    half_size: int
    colour: RGB
    shape: str


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    wall: RGB
    table: RGB
    shirt: RGB
    head_centre: tuple[int, int]
    head_radius: int
    objects: tuple[SceneObject, ...]


@dataclass(frozen=True)
class ClipFrames:
    """Per-frame ground truth of one clip, all in integer pixels."""

    head_centres: np.ndarray  # (T, 2)
    head_boxes: np.ndarray  # (T, 4) x_min, y_min, x_max, y_max
    gaze: np.ndarray  # (T, 2), -1, -1 when out of frame
    angles: np.ndarray  # (T,) face direction in radians, image coordinates (y down)


def _jitter(colour: RGB, rng: np.random.Generator, amount: int) -> RGB:
    shifted = np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return (int(shifted[0]), int(shifted[1]), int(shifted[2]))


def sample_scene(
    rng: np.random.Generator, width: int, height: int, n_objects: int, wall: RGB
) -> Scene:
    """A table with `n_objects` objects in separate slots and a head above it."""
    radius = max(4, round(HEAD_RADIUS * height))
    head_x = int(rng.integers(round(0.25 * width), round(0.75 * width) + 1))
    head_y = int(rng.integers(round(0.2 * height), round(0.32 * height) + 1))
    colour_order = rng.permutation(len(OBJECT_COLOURS))[:n_objects]
    half_size = max(3, round(OBJECT_SIZE * height / 2))
    table_top = round(TABLE_TOP * height)
    slot_width = (0.9 * width) / n_objects
    objects = []
    for slot, colour_index in enumerate(colour_order):
        # One object per slot keeps the objects apart, so each gaze direction names one object.
        low = 0.05 * width + slot * slot_width + half_size + 1
        high = 0.05 * width + (slot + 1) * slot_width - half_size - 1
        x = int(rng.integers(round(low), max(round(low), round(high)) + 1))
        y = int(rng.integers(table_top + half_size + 2, height - half_size - 2 + 1))
        shape = OBJECT_SHAPES[int(rng.integers(len(OBJECT_SHAPES)))]
        objects.append(SceneObject((x, y), half_size, OBJECT_COLOURS[colour_index], shape))
    return Scene(
        width=width,
        height=height,
        wall=_jitter(wall, rng, 8),
        table=_jitter((150, 105, 60), rng, 10),
        shirt=SHIRT_COLOURS[int(rng.integers(len(SHIRT_COLOURS)))],
        head_centre=(head_x, head_y),
        head_radius=radius,
        objects=tuple(objects),
    )


def _out_of_frame_point(rng: np.random.Generator, scene: Scene) -> tuple[float, float]:
    """A point outside the frame, above it or to one side at or above head height."""
    width, height = scene.width, scene.height
    side = int(rng.integers(3))
    if side == 0:
        return float(rng.uniform(-0.2 * width, 1.2 * width)), -0.6 * height
    x = -0.6 * width if side == 1 else 1.6 * width
    return x, float(scene.head_centre[1] - rng.uniform(0.0, 0.4) * height)


def _segment_targets(
    rng: np.random.Generator, n_frames: int, n_objects: int, out_probability: float
) -> list[tuple[int, int]]:
    """Gaze segments as (first frame, target) with target an object index or OUT_OF_FRAME."""
    most = max(1, min(4, n_frames // MIN_SEGMENT_FRAMES))
    n_segments = int(rng.integers(min(2, most), most + 1))
    # Segment starts: evenly spread, each moved by up to a quarter of a segment.
    spacing = n_frames / n_segments
    starts = [0]
    for index in range(1, n_segments):
        shift = rng.uniform(-0.25, 0.25) * spacing
        starts.append(round(index * spacing + shift))
    segments = []
    previous: int | None = None
    for start in starts:
        choices = [obj for obj in range(n_objects) if obj != previous]
        if previous != OUT_OF_FRAME and rng.uniform() < out_probability:
            target = OUT_OF_FRAME
        else:
            target = choices[int(rng.integers(len(choices)))]
        segments.append((start, target))
        previous = target
    return segments


def _angle_between(start: float, end: float, fraction: float) -> float:
    """Interpolate along the shorter arc: the head turns the short way round."""
    delta = (end - start + math.pi) % (2 * math.pi) - math.pi
    return start + fraction * delta


def sample_clip(
    rng: np.random.Generator, scene: Scene, n_frames: int, out_probability: float
) -> ClipFrames:
    """Gaze targets, face directions and head boxes for every frame of a clip."""
    segments = _segment_targets(rng, n_frames, len(scene.objects), out_probability)
    points: list[tuple[float, float] | None] = []
    for _, target in segments:
        points.append(None if target == OUT_OF_FRAME else scene.objects[target].centre)
    out_points = {
        index: _out_of_frame_point(rng, scene) for index, p in enumerate(points) if p is None
    }
    sway_phase = rng.uniform(0, 2 * math.pi)
    sway_amplitude = rng.uniform(0.0, 0.015) * scene.width

    head_centres = np.zeros((n_frames, 2), dtype=np.int64)
    head_boxes = np.zeros((n_frames, 4), dtype=np.int64)
    gaze = np.zeros((n_frames, 2), dtype=np.int64)
    angles = np.zeros(n_frames, dtype=np.float64)
    margin = scene.head_radius * (1 + HEAD_BOX_MARGIN)
    segment_index = 0
    for frame in range(n_frames):
        while segment_index + 1 < len(segments) and segments[segment_index + 1][0] <= frame:
            segment_index += 1
        centre_x = scene.head_centre[0] + round(sway_amplitude * math.sin(sway_phase + frame / 3))
        centre_y = scene.head_centre[1]
        head_centres[frame] = (centre_x, centre_y)
        head_boxes[frame] = (
            math.floor(centre_x - margin),
            math.floor(centre_y - margin),
            math.ceil(centre_x + margin),
            math.ceil(centre_y + margin),
        )

        def direction(index: int, cx: int = centre_x, cy: int = centre_y) -> float:
            point = points[index] or out_points[index]
            return math.atan2(point[1] - cy, point[0] - cx)

        label_index = segment_index
        angle = direction(segment_index)
        into_segment = frame - segments[segment_index][0]
        if segment_index > 0 and into_segment < TURN_FRAMES:
            fraction = (into_segment + 1) / (TURN_FRAMES + 1)
            angle = _angle_between(direction(segment_index - 1), angle, fraction)
            if fraction < 0.5:
                label_index = segment_index - 1
        angles[frame] = angle
        point = points[label_index]
        gaze[frame] = point if point is not None else (OUT_OF_FRAME, OUT_OF_FRAME)
    return ClipFrames(head_centres=head_centres, head_boxes=head_boxes, gaze=gaze, angles=angles)


def _disk(draw: ImageDraw.ImageDraw, x: float, y: float, radius: float, colour: RGB) -> None:
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)


def render_frame(scene: Scene, head_centre: tuple[int, int], angle: float) -> Image.Image:
    """Draw one frame: wall, person (torso, head, face turned by `angle`), table, objects."""
    image = Image.new("RGB", (scene.width, scene.height), scene.wall)
    draw = ImageDraw.Draw(image)
    table_top = round(TABLE_TOP * scene.height)
    radius = scene.head_radius
    head_x, head_y = head_centre

    # Torso from the chin down, hidden by the table below its top edge.
    draw.rounded_rectangle(
        (head_x - 1.6 * radius, head_y + 0.8 * radius, head_x + 1.6 * radius, table_top + radius),
        radius=max(1, round(0.6 * radius)),
        fill=scene.shirt,
    )
    draw.rectangle((0, table_top, scene.width, scene.height), fill=scene.table)
    draw.line((0, table_top, scene.width, table_top), fill=(110, 75, 40), width=2)

    direction_x, direction_y = math.cos(angle), math.sin(angle)
    _disk(draw, head_x, head_y, radius, HAIR_COLOUR)
    face_x = head_x + FACE_SHIFT * radius * direction_x
    face_y = head_y + FACE_SHIFT * radius * direction_y
    _disk(draw, face_x, face_y, 0.8 * radius, SKIN_COLOUR)
    features_x = face_x + FEATURE_SHIFT * radius * direction_x
    features_y = face_y + FEATURE_SHIFT * radius * direction_y
    eye_radius = max(1.0, 0.14 * radius)
    # A face turned sideways shows its eyes closer together.
    eye_spacing = 0.35 * radius * (1 - 0.5 * abs(direction_x))
    eyes_y = features_y - 0.15 * radius
    for side in (-1, 1):
        _disk(draw, features_x + side * eye_spacing, eyes_y, eye_radius, EYE_COLOUR)
    _disk(draw, features_x, features_y + 0.2 * radius, max(1.0, 0.12 * radius), NOSE_COLOUR)

    for obj in scene.objects:
        x, y = obj.centre
        size = obj.half_size
        if obj.shape == "square":
            draw.rectangle((x - size, y - size, x + size, y + size), fill=obj.colour)
        elif obj.shape == "disk":
            _disk(draw, x, y, size, obj.colour)
        else:
            draw.polygon([(x, y - size), (x - size, y + size), (x + size, y + size)], obj.colour)
    return image
