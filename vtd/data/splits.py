"""Train, validation and test splits: selected by lists, by k-fold over groups, or held out.

A group is what must not straddle two splits: a show (an ObjectAttention session, i.e. a
participant) or a person, as `DataConfig.group_by` says. Folds and hold-outs are drawn from
the sorted group names with a seeded generator, so the same config gives the same splits on
any machine and whatever the order in which files were listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from vtd.data.config import CrossValidation, DataConfig, GroupBy, HoldOut, SplitSpec
from vtd.data.errors import DataError
from vtd.data.index import Clip, build_index

GroupKey = tuple[str, ...]


@dataclass(frozen=True)
class Splits:
    """The clips of each split; `validation` and `test` may be empty lists."""

    train: list[Clip]
    validation: list[Clip]
    test: list[Clip]

    def summary(self) -> str:
        """One line per split: clips, frames and groups (shows)."""
        lines = []
        for name in ("train", "validation", "test"):
            clips: list[Clip] = getattr(self, name)
            shows = sorted({clip.show for clip in clips})
            frames = sum(len(clip) for clip in clips)
            lines.append(f"{name}: {len(clips)} clips, {frames} frames, shows {shows}")
        return "\n".join(lines)


def group_key(clip: Clip, by: GroupBy) -> GroupKey:
    """The clip's group: (data set, show) or (data set, person)."""
    return (clip.dataset, clip.show) if by == "show" else (clip.dataset, clip.person)


def _matches(value: str, patterns: Sequence[str]) -> bool:
    return any(fnmatchcase(value, pattern) for pattern in patterns)


def select_clips(clips: Sequence[Clip], spec: SplitSpec, where: str = "split") -> list[Clip]:
    """The clips that `spec` selects, in index order.

    Every name or pattern in an include list must match some clip, so that a typo in a show
    name is an error naming `where` (e.g. "data.test.shows") rather than a smaller split.
    """
    includes = {
        "subsets": (spec.subsets, lambda clip: clip.subset),
        "sources": (spec.sources, lambda clip: clip.dataset),
        "shows": (spec.shows, lambda clip: clip.show),
        "persons": (spec.persons, lambda clip: clip.person),
    }
    for name, (patterns, attribute) in includes.items():
        for pattern in patterns or ():
            if not any(fnmatchcase(attribute(clip), pattern) for clip in clips):
                known = sorted({attribute(clip) for clip in clips})
                raise DataError(f"{where}.{name}: {pattern!r} matches nothing; known: {known}")
    selected = []
    for clip in clips:
        included = all(
            patterns is None or _matches(attribute(clip), patterns)
            for patterns, attribute in includes.values()
        )
        excluded = _matches(clip.show, spec.exclude_shows) or _matches(
            clip.person, spec.exclude_persons
        )
        if included and not excluded:
            selected.append(clip)
    return selected


def _shuffled_groups(clips: Sequence[Clip], by: GroupBy, seed: int) -> list[GroupKey]:
    groups = sorted({group_key(clip, by) for clip in clips})
    order = np.random.default_rng(seed).permutation(len(groups))
    return [groups[i] for i in order]


def fold_groups(clips: Sequence[Clip], by: GroupBy, folds: int, seed: int) -> list[list[GroupKey]]:
    """The groups of `clips` dealt into `folds` folds of near equal size (sizes differ by 1)."""
    groups = _shuffled_groups(clips, by, seed)
    if len(groups) < folds:
        raise DataError(
            f"data.cross_validation: {folds} folds need at least {folds} {by}s, "
            f"found {len(groups)}: {sorted(groups)}"
        )
    return [[groups[i] for i in part] for part in np.array_split(np.arange(len(groups)), folds)]


def _in_groups(clips: Sequence[Clip], groups: Sequence[GroupKey], by: GroupBy) -> list[Clip]:
    wanted = set(groups)
    return [clip for clip in clips if group_key(clip, by) in wanted]


def _cross_validate(
    clips: Sequence[Clip], cv: CrossValidation, by: GroupBy
) -> tuple[list[Clip], list[Clip]]:
    pool = select_clips(clips, cv.pool, "data.cross_validation.pool")
    folds = fold_groups(pool, by, cv.folds, cv.seed)
    test_groups = folds[cv.fold]
    train_groups = [group for i, fold in enumerate(folds) if i != cv.fold for group in fold]
    return _in_groups(pool, train_groups, by), _in_groups(pool, test_groups, by)


def _hold_out(train: list[Clip], hold_out: HoldOut, by: GroupBy) -> tuple[list[Clip], list[Clip]]:
    groups = _shuffled_groups(train, by, hold_out.seed)
    if hold_out.groups >= len(groups):
        raise DataError(
            f"data.validation.groups: cannot hold out {hold_out.groups} of the "
            f"{len(groups)} training {by}s and still train"
        )
    held = set(groups[: hold_out.groups])
    return (
        [clip for clip in train if group_key(clip, by) not in held],
        [clip for clip in train if group_key(clip, by) in held],
    )


def _check_disjoint(splits: Splits) -> None:
    names = ("train", "validation", "test")
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            first_clips: list[Clip] = getattr(splits, first)
            second_clips: list[Clip] = getattr(splits, second)
            shared = {clip.key for clip in first_clips} & {clip.key for clip in second_clips}
            if shared:
                raise DataError(
                    f"data.{first} and data.{second} share {len(shared)} clips, e.g. "
                    f"{sorted(shared)[0]!r}; make the selections disjoint"
                )


def make_splits(clips: Sequence[Clip], config: DataConfig) -> Splits:
    """Train, validation and test clips from an index, as `config` says.

    Raises `DataError` when a selection names something absent, when the training split is
    empty, or when two splits share a clip. Folds and hold-outs never split a group; lists
    may (e.g. train on some settings of every session), as the user chose.
    """
    by = config.group_by
    if config.cross_validation is not None:
        train, test = _cross_validate(clips, config.cross_validation, by)
    else:
        train = select_clips(clips, config.train, "data.train")
        test = select_clips(clips, config.test, "data.test") if config.test is not None else []
        if "train" not in config.model_fields_set:
            # The default train split is "the rest": listing test shows is enough.
            held = {clip.key for clip in test}
            train = [clip for clip in train if clip.key not in held]
    if isinstance(config.validation, HoldOut):
        train, validation = _hold_out(train, config.validation, by)
    elif isinstance(config.validation, SplitSpec):
        # A listed validation split is carved from train too: listing a show there is enough.
        validation = select_clips(clips, config.validation, "data.validation")
        held = {clip.key for clip in validation}
        train = [clip for clip in train if clip.key not in held]
    else:
        validation = []
    if not train:
        raise DataError("data.train selects no clip")
    splits = Splits(train=train, validation=validation, test=test)
    _check_disjoint(splits)
    return splits


def load_splits(config: DataConfig, base_dir: Path | str = ".") -> Splits:
    """Index the config's sources (paths relative to `base_dir`) and split them."""
    return make_splits(build_index(config, base_dir), config)
