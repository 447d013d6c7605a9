"""Train, validation and test splits: selected by lists, by k-fold over groups, or held out.

A group is what must not straddle two splits: a show (an ObjectAttention session, i.e. a
participant) or a person, as `DataConfig.group_by` says. Folds and hold-outs are drawn from
the sorted group names with a seeded generator, so the same config gives the same splits on
any machine and whatever the order in which files were listed.

Show names in a selection match show folders ignoring case, spaces and punctuation ("The
View" is `the_view` or `TheView`); shell patterns (`P0*`) match as written. A name that
matches no folder is an error listing the closest folder names; a name that differs from its
folder by more than that (the lab's "Sienfield") is mapped by `DataConfig.show_aliases`,
never by a guess.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from vtd.data.config import (
    CrossValidation,
    DataConfig,
    GroupBy,
    HoldOut,
    NamedSplit,
    SplitSpec,
)
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


def show_key(name: str) -> str:
    """A show name as compared: lower case, letters and digits only ("Hell's Kitchen" ->
    "hellskitchen")."""
    return "".join(character for character in name.casefold() if character.isalnum())


def _is_pattern(name: str) -> bool:
    return any(character in name for character in "*?[")


def show_matches(show: str, name: str, aliases: Mapping[str, str] | None = None) -> bool:
    """Whether the show folder `show` is the one `name` means: a shell pattern as written,
    else equal ignoring case, spaces and punctuation, after `aliases` (name -> folder)."""
    if _is_pattern(name):
        return fnmatchcase(show, name)
    return show_key(show) == show_key((aliases or {}).get(name, name))


def _shows_match(show: str, names: Sequence[str], aliases: Mapping[str, str]) -> bool:
    return any(show_matches(show, name, aliases) for name in names)


def closest_shows(name: str, shows: Sequence[str], count: int = 3) -> list[str]:
    """The show folders whose names are nearest to `name` (difflib), for error messages."""
    by_key: dict[str, list[str]] = {}
    for show in sorted(set(shows)):
        by_key.setdefault(show_key(show), []).append(show)
    close = difflib.get_close_matches(show_key(name), list(by_key), n=count, cutoff=0.5)
    return [show for key in close for show in by_key[key]]


def _unmatched_show(where: str, name: str, shows: Sequence[str], alias: str | None) -> DataError:
    meant = f"{name!r} (alias of {alias!r})" if alias is not None else repr(name)
    close = closest_shows(alias if alias is not None else name, shows)
    hint = f"closest: {close}" if close else f"known: {sorted(set(shows))}"
    return DataError(
        f"{where}: {meant} matches no show folder (compared ignoring case, spaces and "
        f"punctuation); {hint}; if it is one of these under another name, map it in "
        "data.show_aliases"
    )


def select_clips(
    clips: Sequence[Clip],
    spec: SplitSpec,
    where: str = "split",
    aliases: Mapping[str, str] | None = None,
) -> list[Clip]:
    """The clips that `spec` selects, in index order.

    Every name or pattern in an include list must match some clip, so that a typo in a show
    name is an error naming `where` (e.g. "data.test.shows") rather than a smaller split.
    Show names compare ignoring case, spaces and punctuation, after `aliases`.
    """
    aliases = aliases or {}
    includes = {
        "subsets": (spec.subsets, lambda clip: clip.subset),
        "sources": (spec.sources, lambda clip: clip.dataset),
        "persons": (spec.persons, lambda clip: clip.person),
    }
    for name, (patterns, attribute) in includes.items():
        for pattern in patterns or ():
            if not any(fnmatchcase(attribute(clip), pattern) for clip in clips):
                known = sorted({attribute(clip) for clip in clips})
                raise DataError(f"{where}.{name}: {pattern!r} matches nothing; known: {known}")
    shows = [clip.show for clip in clips]
    for name in spec.shows or ():
        if not any(show_matches(show, name, aliases) for show in set(shows)):
            raise _unmatched_show(f"{where}.shows", name, shows, aliases.get(name))
    selected = []
    for clip in clips:
        included = all(
            patterns is None or _matches(attribute(clip), patterns)
            for patterns, attribute in includes.values()
        ) and (spec.shows is None or _shows_match(clip.show, spec.shows, aliases))
        excluded = _shows_match(clip.show, spec.exclude_shows, aliases) or _matches(
            clip.person, spec.exclude_persons
        )
        if included and not excluded:
            selected.append(clip)
    return selected


def select_any(
    clips: Sequence[Clip],
    specs: SplitSpec | Sequence[SplitSpec],
    where: str,
    aliases: Mapping[str, str] | None = None,
) -> list[Clip]:
    """The clips of one selection, or of a list of selections added up, in index order."""
    if isinstance(specs, SplitSpec):
        return select_clips(clips, specs, where, aliases)
    keys = {
        clip.key
        for index, spec in enumerate(specs)
        for clip in select_clips(clips, spec, f"{where}.{index}", aliases)
    }
    return [clip for clip in clips if clip.key in keys]


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


def _group_clips(pool: Sequence[Clip], group: str, config: DataConfig, where: str) -> list[Clip]:
    """The clips of one group of a named split: its shows in `config.groups`, else the show
    of that name."""
    shows = [clip.show for clip in pool]
    aliases = config.show_aliases
    if group not in config.groups:
        if not any(show_matches(show, group, aliases) for show in set(shows)):
            close = difflib.get_close_matches(
                group, sorted({*config.groups, *shows}), n=3, cutoff=0.5
            )
            known = sorted({*config.groups, *shows})
            hint = f"closest: {close}" if close else f"known: {known[:20]}"
            raise DataError(
                f"{where}: {group!r} is neither a name in data.groups nor a show folder; {hint}"
            )
        return [clip for clip in pool if show_matches(clip.show, group, aliases)]
    names = config.groups[group]
    for name in names:
        if not any(show_matches(show, name, aliases) for show in set(shows)):
            raise _unmatched_show(f"data.groups.{group}", name, shows, aliases.get(name))
    return [clip for clip in pool if _shows_match(clip.show, names, aliases)]


def _named_split(
    clips: Sequence[Clip], config: DataConfig, name: str
) -> tuple[list[Clip], list[Clip], list[Clip]]:
    split: NamedSplit = config.splits[name]
    pool = select_clips(clips, config.split_pool, "data.split_pool", config.show_aliases)
    where = f"data.splits.{name}"
    test = [c for group in split.test for c in _group_clips(pool, group, config, f"{where}.test")]
    validation = [
        c
        for group in split.validation
        for c in _group_clips(pool, group, config, f"{where}.validation")
    ]
    held = {clip.key for clip in test} | {clip.key for clip in validation}
    train = [clip for clip in pool if clip.key not in held]
    order = {clip.key: index for index, clip in enumerate(pool)}
    test = sorted({c.key: c for c in test}.values(), key=lambda clip: order[clip.key])
    validation = sorted({c.key: c for c in validation}.values(), key=lambda clip: order[clip.key])
    return train, validation, test


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
    aliases = config.show_aliases
    if config.split is not None:
        train, validation, test = _named_split(clips, config, config.split)
        if not train:
            raise DataError(f"data.splits.{config.split} leaves no clip to train on")
        splits = Splits(train=train, validation=validation, test=test)
        _check_disjoint(splits)
        return splits
    if config.cross_validation is not None:
        train, test = _cross_validate(clips, config.cross_validation, by)
    else:
        train = select_any(clips, config.train, "data.train", aliases)
        test = (
            select_any(clips, config.test, "data.test", aliases) if config.test is not None else []
        )
        if "train" not in config.model_fields_set:
            # The default train split is "the rest": listing test shows is enough.
            held = {clip.key for clip in test}
            train = [clip for clip in train if clip.key not in held]
    if isinstance(config.validation, HoldOut):
        train, validation = _hold_out(train, config.validation, by)
    elif isinstance(config.validation, SplitSpec):
        # A listed validation split is carved from train too: listing a show there is enough.
        validation = select_clips(clips, config.validation, "data.validation", aliases)
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
