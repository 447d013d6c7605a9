"""The ready sweep files of sweeps/: valid as shipped, and they run, shrunk, on a miniature
copy of the real data layouts (tests/data/sweeps_mini/layout.yaml).

Each file is copied into a temporary project folder (`sweeps/`, `data/`, `weights/`) that
has the miniature data and the authors' checkpoints at the files' placeholder paths, so the
files are read exactly as shipped. The checkpoints are small-model stand-ins in the authors'
format (`{'model': state_dict}`; the spatial one without ConvLSTM weights). Shrinking is an
override of the file's own keys (small model, one epoch, fewer grid values), written as a
second file next to it and read by the same `load_sweep`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._data_factory import frame_specs, write_clip
from tests._report_study import write_small_checkpoint
from vtd.data.splits import load_splits
from vtd.sweep.plan.config import Sweep, load_sweep
from vtd.sweep.store.study import resolve

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = ROOT / "tests" / "data" / "sweeps_mini" / "layout.yaml"
FILES = ("oa_batch_chunk_grid", "oa_initial_weights", "oa_participant_cv", "oa_vat_mixed")
SPATIAL = "initial_weights_for_temporal_training.pt"
TEMPORAL = "model_videoatttarget.pt"


def write_mini_data(project: Path) -> dict[str, Any]:
    layout = yaml.safe_load(LAYOUT.read_text())
    size = tuple(layout["frame_size"])
    count = 0
    for name in ("objectattention", "videoattentiontarget"):
        spec = layout[name]
        person = "person" if name == "objectattention" else "s00"
        for subset in ("train", "test"):
            for show in spec[subset]:
                for clip in range(spec["clips_per_show"]):
                    write_clip(
                        project / spec["root"],
                        layout=name,
                        subset=subset,
                        show=show,
                        clip=f"setting{clip + 1}" if name == "objectattention" else "0001_0006",
                        person=person,
                        frames=frame_specs(layout["frames_per_clip"], size),
                        size=size,
                        seed=count,
                    )
                    count += 1
    return layout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with the miniature data, the checkpoints and the sweep files."""
    folder = tmp_path_factory.mktemp("sweeps-project")
    write_mini_data(folder)
    write_small_checkpoint(folder / "weights" / TEMPORAL, seed=1)
    write_small_checkpoint(folder / "weights" / SPATIAL, seed=2, drop_prefix="convlstm_scene.")
    (folder / "sweeps").mkdir()
    for name in FILES:
        shutil.copyfile(ROOT / "sweeps" / f"{name}.yaml", folder / "sweeps" / f"{name}.yaml")
    return folder


def _load(project: Path, name: str) -> Sweep:
    return load_sweep(project / "sweeps" / f"{name}.yaml")


def _trial_configs(sweep: Sweep) -> list:
    return [resolve(sweep, params, 0).config for params in sweep.space.grid_cells()]


def test_every_file_is_valid_and_says_what_to_set() -> None:
    names = [path.stem for path in sorted((ROOT / "sweeps").glob("*.yaml"))]
    assert names == sorted(FILES)
    studies = set()
    for name in FILES:
        text = (ROOT / "sweeps" / f"{name}.yaml").read_text()
        assert "SET THIS" in text and "data/ObjectAttention" in text
        raw = yaml.safe_load(text)
        assert raw["study"] not in studies
        studies.add(raw["study"])


def test_the_files_are_the_published_experiments(project: Path) -> None:
    grid = _load(project, "oa_batch_chunk_grid")
    assert grid.space.values_of("batch_size") == (4, 8, 16)
    assert grid.space.values_of("chunk_size") == (2, 3, 4)
    assert grid.base.epochs == 15 and grid.base.model.variant == "full"
    assert grid.base.initial_weights == (project / "weights" / TEMPORAL).resolve()
    assert grid.studies_dir == project / "studies"

    weights = _load(project, "oa_initial_weights")
    assert weights.file.repeats == 3 and weights.base.epochs == 3
    assert weights.base.model.variant == "full"
    assert [Path(w).name for w in weights.space.values_of("initial_weights")] == [SPATIAL, TEMPORAL]

    folds = _load(project, "oa_participant_cv")
    assert folds.base.data.cross_validation.folds == 5
    assert folds.space.values_of("data.cross_validation.fold") == (0, 1, 2, 3, 4)
    assert folds.file.report.columns == "data.cross_validation.fold"

    mixed = _load(project, "oa_vat_mixed")
    train, test = mixed.base.data.train.shows, mixed.base.data.test.shows
    assert len(train) == 13 and len(test) == 5  # an ObjectAttention pattern and 12 shows
    assert not set(train) & set(test)


def test_the_splits_resolve_on_the_real_layouts(project: Path) -> None:
    layout = yaml.safe_load(LAYOUT.read_text())
    oa, vat = layout["objectattention"], layout["videoattentiontarget"]
    for name in ("oa_batch_chunk_grid", "oa_initial_weights"):
        for config in _trial_configs(_load(project, name)):
            splits = load_splits(config.data, config.data_dir)
            assert {clip.show for clip in splits.test} == set(oa["test"])
            assert {c.show for c in splits.train + splits.validation} == set(oa["train"])
            assert len({clip.show for clip in splits.validation}) == 2

    tested: list[str] = []
    for config in _trial_configs(_load(project, "oa_participant_cv")):
        splits = load_splits(config.data, config.data_dir)
        tested += sorted({clip.show for clip in splits.test})
        assert len({clip.show for clip in splits.validation}) == 1
        assert not {c.show for c in splits.train} & {c.show for c in splits.test}
    assert sorted(tested) == sorted(oa["train"] + oa["test"])  # each participant tested once

    mixed = _load(project, "oa_vat_mixed")
    (config,) = _trial_configs(mixed)
    splits = load_splits(config.data, config.data_dir)
    named_train = [show for show in mixed.base.data.train.shows if show != "P*"]
    assert {c.show for c in splits.test} == set(mixed.base.data.test.shows)
    assert {c.show for c in splits.train + splits.validation} == set(oa["train"]) | set(named_train)
    assert {c.dataset for c in splits.train + splits.validation} == {
        "objectattention",
        "videoattentiontarget",
    }
    # the miniature data carries the file's real show names, and shows the file leaves out
    assert set(named_train) | set(mixed.base.data.test.shows) == (
        set(vat["train"]) | set(vat["test"])
    ) - set(layout["unused_shows"])


def shrink(raw: dict[str, Any]) -> dict[str, Any]:
    """The same experiment, small: small model, 1 epoch, 1 seed, 2 values of the columns."""
    training = raw.setdefault("training", {})
    training.update({"model": {"variant": "small"}, "epochs": 1, "device": "cpu"})
    raw["repeats"] = 1
    columns = raw.get("report", {}).get("columns", "chunk_size")
    raw["search_space"] = {
        name: values[:2] if name in (columns, "initial_weights") else values[:1]
        for name, values in raw.get("search_space", {}).items()
    }
    return raw


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES)
def test_each_file_runs_shrunk_and_reports(project: Path, name: str) -> None:
    from vtd.sweep.execute.session import run_sweep
    from vtd.sweep.reporting.report import write_report
    from vtd.sweep.reporting.results import trials_frame

    raw = shrink(yaml.safe_load((project / "sweeps" / f"{name}.yaml").read_text()))
    path = project / "sweeps" / f"{name}.shrunk.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    sweep = load_sweep(path)
    outcome = run_sweep(sweep)
    expected = {"oa_batch_chunk_grid": 2, "oa_initial_weights": 2, "oa_participant_cv": 2}
    assert len(outcome.ended) == expected.get(name, 1)
    trials = trials_frame(sweep)
    assert set(trials["state"]) == {"COMPLETE"}, trials["reason"].tolist()
    files = write_report(sweep, parent_run_id=outcome.parent_run_id)
    text = files.report.read_text()
    rows = re.findall(r"^\| C\d+ \|", text, flags=re.MULTILINE)
    assert len(rows) == len(outcome.ended)  # one table row per configuration
    assert "grid_val_auc" in files.plots and "grid_test_dist" in files.plots
