"""Splits by lists, k-fold cross-validation by show or person, validation hold-outs."""

from __future__ import annotations

from pathlib import Path

import pytest
from _data_factory import write_dataset

from vtd.data import DataConfig, DataError, build_index, make_splits
from vtd.data.splits import fold_groups

PARTICIPANTS = [f"P{i:02d}" for i in range(1, 11)]


@pytest.fixture(scope="module")
def participants(tmp_path_factory) -> Path:
    """ObjectAttention layout: 10 sessions (participants), 2 settings each, 2 frames a clip."""
    root = tmp_path_factory.mktemp("oa")
    write_dataset(
        root / "oa",
        layout="objectattention",
        shows=PARTICIPANTS,
        clips_per_show=2,
        persons=("left", "right"),
        lengths=(2,),
    )
    return root


@pytest.fixture(scope="module")
def clips(participants):
    return build_index(DataConfig(sources=["oa"]), participants)


def shows(clips) -> set[str]:
    return {clip.show for clip in clips}


def config(**fields) -> DataConfig:
    return DataConfig(sources=["oa"], **fields)


def test_lists_with_include_exclude_and_patterns(clips):
    splits = make_splits(
        clips,
        config(
            train={"shows": ["P0*"], "exclude_shows": ["P09"]},
            validation={"shows": ["P09"], "persons": ["left"]},
            test={"shows": ["P10"]},
        ),
    )
    assert shows(splits.train) == {f"P0{i}" for i in range(1, 9)}
    assert shows(splits.validation) == {"P09"} and {c.person for c in splits.validation} == {"left"}
    assert shows(splits.test) == {"P10"}
    assert len(splits.train) == 8 * 4


def test_listed_validation_is_carved_from_train(clips):
    splits = make_splits(
        clips, config(train={"subsets": ["train"]}, validation={"shows": ["P03"]}, test=None)
    )
    assert "P03" not in shows(splits.train)
    assert shows(splits.validation) == {"P03"}
    assert splits.test == []


def test_a_name_that_matches_nothing_is_an_error(clips):
    with pytest.raises(DataError, match=r"data.test.shows: 'P11' matches nothing; known: \['P01'"):
        make_splits(clips, config(test={"shows": ["P11"]}))
    with pytest.raises(DataError, match="data.train selects no clip"):
        make_splits(clips, config(train={"exclude_shows": ["P*"]}, test=None))


def test_default_train_is_what_test_leaves(clips):
    splits = make_splits(clips, config(test={"shows": ["P10", "P05"]}))
    assert shows(splits.test) == {"P05", "P10"}
    assert shows(splits.train) == set(PARTICIPANTS) - {"P05", "P10"}


def test_train_and_test_may_not_share_a_clip(clips):
    with pytest.raises(DataError, match="data.train and data.test share 4 clips"):
        make_splits(clips, config(train={"shows": ["P01", "P02"]}, test={"shows": ["P02"]}))


def test_five_folds_over_ten_participants(clips):
    seen_in_test: list[str] = []
    for fold in range(5):
        cv = {"folds": 5, "fold": fold, "seed": 3}
        splits = make_splits(clips, config(cross_validation=cv))
        assert len(shows(splits.train)) == 8 and len(shows(splits.test)) == 2
        assert shows(splits.train).isdisjoint(shows(splits.test))
        assert len(splits.train) + len(splits.test) == len(clips)
        seen_in_test += sorted(shows(splits.test))
        again = make_splits(clips, config(cross_validation=cv))
        assert [c.key for c in again.test] == [c.key for c in splits.test], "deterministic"
    assert sorted(seen_in_test) == PARTICIPANTS, "every participant tested exactly once"


def test_folds_depend_on_the_seed_not_on_clip_order(clips):
    def test_shows(seed, clip_list):
        cv = {"folds": 5, "fold": 0, "seed": seed}
        return shows(make_splits(clip_list, config(cross_validation=cv)).test)

    assert test_shows(0, clips) == test_shows(0, list(reversed(clips)))
    assert len({frozenset(test_shows(seed, clips)) for seed in range(6)}) > 1


def test_uneven_folds_differ_by_at_most_one_group(clips):
    sizes = [len(fold) for fold in fold_groups(clips, "show", 3, seed=0)]
    assert sorted(sizes) == [3, 3, 4]
    with pytest.raises(DataError, match="11 folds need at least 11 shows, found 10"):
        fold_groups(clips, "show", 11, seed=0)


def test_folds_by_person(clips):
    splits = make_splits(clips, config(group_by="person", cross_validation={"folds": 2, "fold": 1}))
    train_persons = {c.person for c in splits.train}
    test_persons = {c.person for c in splits.test}
    assert len(train_persons) == 1 and len(test_persons) == 1
    assert train_persons != test_persons


def test_cross_validation_pool_and_validation_hold_out(clips):
    data = config(
        cross_validation={"folds": 4, "fold": 1, "pool": {"exclude_shows": ["P09", "P10"]}},
        validation={"groups": 2, "seed": 1},
    )
    splits = make_splits(clips, data)
    assert not shows(splits.train + splits.validation + splits.test) & {"P09", "P10"}
    assert len(shows(splits.validation)) == 2
    assert len(shows(splits.test)) == 2
    assert len(shows(splits.train)) == 4
    assert shows(splits.validation).isdisjoint(shows(splits.train) | shows(splits.test))
    with pytest.raises(DataError, match="cannot hold out 6 of the 6 training shows"):
        make_splits(clips, data.model_copy(update={"validation": type(data.validation)(groups=6)}))


def test_splits_summary_names_sizes(clips):
    summary = make_splits(clips, config(test={"shows": ["P10"]})).summary()
    assert "train: 36 clips, 72 frames" in summary
    assert "test: 4 clips, 8 frames, shows ['P10']" in summary
