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
    with pytest.raises(
        DataError,
        match=r"data.test.shows: 'P11' matches no show folder .*; closest: \['P10', 'P01'\]",
    ):
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


# --- show names as people write them, and the lab's named participant splits ---------------

TV_SHOWS = ["Seinfeld", "Hell's Kitchen", "the_view", "Tartuffe", "Star Wars", "Suits"]
LAB = ["Shiva", "Gabriele", "Simone", "Andrea", "Giulia"]


@pytest.fixture(scope="module")
def tv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vat")
    write_dataset(root / "vat", layout="videoattentiontarget", shows=TV_SHOWS, lengths=(2,))
    return root


def test_show_names_match_folders_ignoring_case_spaces_and_punctuation(tv):
    clips = build_index(DataConfig(sources=["vat"]), tv)
    data = DataConfig(
        sources=["vat"], train={"shows": ["hells kitchen", "The View", "STAR-WARS"]}, test=None
    )
    assert shows(make_splits(clips, data).train) == {"Hell's Kitchen", "the_view", "Star Wars"}
    # patterns still match as written
    data = DataConfig(sources=["vat"], train={"shows": ["S*"]}, test=None)
    assert shows(make_splits(clips, data).train) == {"Seinfeld", "Star Wars", "Suits"}


def test_a_misspelt_show_is_an_error_naming_the_closest_folders_never_a_guess(tv):
    clips = build_index(DataConfig(sources=["vat"]), tv)
    for written, closest in (("Sienfield", "Seinfeld"), ("Tartuffle", "Tartuffe")):
        data = DataConfig(sources=["vat"], train={"shows": ["Suits", written]}, test=None)
        with pytest.raises(DataError) as error:
            make_splits(clips, data)
        message = str(error.value)
        assert message.startswith(f"data.train.shows: {written!r} matches no show folder")
        assert f"closest: [{closest!r}" in message and "data.show_aliases" in message
        assert "\n" not in message
    # an explicit alias says what the lab meant
    data = DataConfig(
        sources=["vat"],
        train={"shows": ["Sienfield", "Tartuffle"]},
        test=None,
        show_aliases={"Sienfield": "Seinfeld", "Tartuffle": "Tartuffe"},
    )
    assert shows(make_splits(clips, data).train) == {"Seinfeld", "Tartuffe"}
    # an alias to a folder that is not there is an error too, naming both
    data = DataConfig(
        sources=["vat"],
        train={"shows": ["Sienfield"]},
        test=None,
        show_aliases={"Sienfield": "Seinfield"},
    )
    with pytest.raises(DataError, match=r"'Sienfield' \(alias of 'Seinfield'\).*'Seinfeld'"):
        make_splits(clips, data)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Path:
    """Sessions named after the lab's participants, two per participant, in train and test."""
    root = tmp_path_factory.mktemp("lab")
    sessions = [f"{name}_session{i}" for name in LAB for i in (1, 2)]
    subset_of = {session: "test" for session in sessions if session.endswith("2")}
    write_dataset(
        root / "oa", layout="objectattention", shows=sessions, subset_of=subset_of, lengths=(2,)
    )
    return root


def lab_config(split: str | None, **fields) -> DataConfig:
    return DataConfig(
        sources=["oa"],
        groups={name: [f"{name}_*"] for name in LAB},
        splits={
            "first": {"test": ["Shiva", "Gabriele"]},
            "second": {"validation": ["Giulia"], "test": ["Andrea", "Simone"]},
        },
        split=split,
        **fields,
    )


def test_a_named_split_tests_its_participants_in_every_subset(lab):
    clips = build_index(DataConfig(sources=["oa"]), lab)
    first = make_splits(clips, lab_config("first"))
    assert shows(first.test) == {f"{n}_session{i}" for n in ("Shiva", "Gabriele") for i in (1, 2)}
    assert first.validation == []
    assert {c.show.split("_")[0] for c in first.train} == {"Simone", "Andrea", "Giulia"}
    assert {c.subset for c in first.train} == {"train", "test"}  # all the sessions, re-split
    second = make_splits(clips, lab_config("second"))
    assert {c.show.split("_")[0] for c in second.validation} == {"Giulia"}
    assert {c.show.split("_")[0] for c in second.test} == {"Andrea", "Simone"}
    assert {c.show.split("_")[0] for c in second.train} == {"Shiva", "Gabriele"}


def test_named_splits_are_validated(lab):
    with pytest.raises(ValueError, match="split 'third' is not one of the named splits"):
        lab_config("third")
    with pytest.raises(ValueError, match="a named split chooses train, validation and test"):
        lab_config("first", test={"shows": ["Shiva_*"]})
    with pytest.raises(ValueError, match="in both test and validation"):
        DataConfig(sources=["oa"], splits={"x": {"test": ["A"], "validation": ["A"]}})
    clips = build_index(DataConfig(sources=["oa"]), lab)
    data = DataConfig(sources=["oa"], splits={"x": {"test": ["Shiva"]}}, split="x")  # no groups
    with pytest.raises(
        DataError,
        match=r"data.splits.x.test: 'Shiva' is neither .* closest: \['Shiva_session2', 'Shiva_s",
    ):
        make_splits(clips, data)
    data = DataConfig.model_validate(
        {
            **lab_config("first").model_dump(exclude_unset=True),
            "groups": {"Shiva": ["Shiva-*"], "Gabriele": ["G*"]},
        }
    )
    with pytest.raises(DataError, match=r"data.groups.Shiva: 'Shiva-\*' matches no show folder"):
        make_splits(clips, data)


def test_train_may_be_several_selections_added_up(tv):
    clips = build_index(DataConfig(sources=["vat"]), tv)
    data = DataConfig(
        sources=["vat"], train=[{"shows": ["Suits"]}, {"shows": ["star wars", "Suits"]}], test=None
    )
    selected = make_splits(clips, data).train
    assert shows(selected) == {"Suits", "Star Wars"}
    assert len(selected) == len({clip.key for clip in selected})  # each clip once
    data = DataConfig(sources=["vat"], train=[{"shows": ["Suits"]}, {"shows": ["Veep"]}], test=None)
    with pytest.raises(DataError, match=r"^data.train.1.shows: 'Veep' matches no show folder"):
        make_splits(clips, data)
