"""What a data config's splits hold, per split and source: one row each, as a pandas table.

`summarize(index, splits, group_by)` counts clips, frames and the in-frame share, reads every
frame's image size from its file header (nothing is decoded), names the formats the files
were read as and the frames skipped (with `on_bad_frame: skip`) and why, and lists the groups
(shows, i.e. ObjectAttention sessions / participants, or persons) in each split. Clips that
no split selects appear under the split "unused", so that nothing indexed goes unseen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vtd.data.config import GroupBy
from vtd.data.images import image_size
from vtd.data.index import Clip, DataIndex
from vtd.data.splits import Splits

SPLITS = ("train", "validation", "test")
UNUSED = "unused"
COLUMNS = (
    "split",
    "source",
    "clips",
    "frames",
    "in_frame",
    "image_sizes",
    "formats",
    "skipped",
    "skipped_why",
    "groups",
    "group_names",
)


@dataclass(frozen=True)
class _Part:
    split: str
    source: str
    clips: list[Clip]


def _counted(counts: Counter[str]) -> str:
    """`a: 3; b: 1`, most frequent first (then by name)."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "; ".join(f"{name}: {count}" for name, count in ordered)


def _group(clip: Clip, group_by: GroupBy) -> str:
    return clip.show if group_by == "show" else clip.person


def _parts(index: DataIndex, splits: Splits) -> Iterable[_Part]:
    used: set[str] = set()
    for split in SPLITS:
        clips: list[Clip] = getattr(splits, split)
        used.update(clip.key for clip in clips)
        for source in dict.fromkeys(clip.dataset for clip in clips):
            yield _Part(split, source, [clip for clip in clips if clip.dataset == source])
    unused = [clip for clip in index.clips if clip.key not in used]
    for source in dict.fromkeys(clip.dataset for clip in unused):
        yield _Part(UNUSED, source, [clip for clip in unused if clip.dataset == source])


def _image_sizes(clips: Iterable[Clip]) -> Counter[str]:
    sizes: Counter[str] = Counter()
    for clip in clips:
        for frame in clip.frames:
            width, height = image_size(frame)
            sizes[f"{width}x{height}"] += 1
    return sizes


def summarize(index: DataIndex, splits: Splits, group_by: GroupBy = "show") -> pd.DataFrame:
    """One row per (split, source), in split order, with the columns of `COLUMNS`."""
    skipped_by_file: dict[Path, Counter[str]] = {}
    for frame in index.skipped:
        skipped_by_file.setdefault(frame.annotation_file, Counter())[frame.kind] += 1
    rows = []
    for part in _parts(index, splits):
        frames = sum(len(clip) for clip in part.clips)
        in_frame = sum(int(clip.inout.sum()) for clip in part.clips)
        skipped: Counter[str] = Counter()
        for clip in part.clips:
            skipped.update(skipped_by_file.get(clip.annotation_file, Counter()))
        groups = sorted({_group(clip, group_by) for clip in part.clips})
        formats = Counter(index.formats[clip.annotation_file].label for clip in part.clips)
        rows.append(
            {
                "split": part.split,
                "source": part.source,
                "clips": len(part.clips),
                "frames": frames,
                "in_frame": in_frame / frames if frames else 0.0,
                "image_sizes": _counted(_image_sizes(part.clips)),
                "formats": _counted(formats),
                "skipped": sum(skipped.values()),
                "skipped_why": _counted(skipped),
                "groups": len(groups),
                "group_names": ", ".join(groups),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))
