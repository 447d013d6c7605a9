"""The ready sweep files of sweeps/, the lab's experiments: valid as shipped, quoting the lab's
published figures, and they run, shrunk, on a miniature copy of the lab's data layouts with
its participant and show names (tests/data/sweeps_mini/layout.yaml).

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
from vtd.data.errors import DataError
from vtd.data.splits import load_splits
from vtd.sweep.plan.config import Sweep, load_sweep
from vtd.sweep.store.study import resolve

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = ROOT / "tests" / "data" / "sweeps_mini" / "layout.yaml"
FILES = (
    "oa_batch_chunk_grid",
    "oa_batch_chunk_grid_validated",
    "oa_initial_weights",
    "oa_participants",
    "oa_vat_mixed",
)
SPATIAL = "initial_weights_for_temporal_training.pt"
TEMPORAL = "model_videoatttarget.pt"
# DESIGN.md, "The lab's experiments and published figures", typed in again here: the files'
# headers and `report.published` must quote exactly these.
LAB_FIGURES = {
    "oa_initial_weights": [
        (SPATIAL, "initial", 0.7803, 0.1078),
        (TEMPORAL, "initial", 0.8915, 0.1682),
        (SPATIAL, "trained", 0.8569, 0.0821),
        (SPATIAL, "trained", 0.8334, 0.0876),
        (SPATIAL, "trained", 0.8017, 0.0862),
        (TEMPORAL, "trained", 0.8686, 0.1090),
        (TEMPORAL, "trained", 0.8520, 0.1008),
        (TEMPORAL, "trained", 0.8207, 0.0919),
    ]
}
CUDA_ERRORS = {(8, 2), (8, 3), (8, 4), (16, 4)}
LAB_TESTS = [
    ["Shiva", "Gabriele", "Simone"],
    ["Andrea", "Simone", "Giulia"],
    ["Elisa", "Gabriele", "Stefano"],
    ["Maria", "Francesco", "Simone"],
    ["Elisa", "Raffaele", "Maria"],
]
LAB_VALIDATIONS = [
    ["Giulia", "Stefano"],
    ["Raffaele", "Stefano"],
    ["Simone", "Maria"],
    ["Stefano", "Gabriele"],
    ["Andrea", "Simone"],
]
LAB_TRAIN_SHOWS = [
    "Veep",
    "Three Idiots",
    "The View",
    "Tartuffle",
    "Suits",
    "Star Wars",
    "Sherlock",
    "Sienfield",
    "Secret",
    "Hearing",
    "Friends",
    "Coveted",
]
LAB_TEST_SHOWS = ["Jamie Oliver", "MLB Interview", "Survivor", "Titanic", "West World"]


def write_mini_data(project: Path) -> dict[str, Any]:
    layout = yaml.safe_load(LAYOUT.read_text())
    size = tuple(layout["frame_size"])
    count = 0
    for name in ("objectattention", "videoattentiontarget"):
        spec = layout[name]
        person = spec.get("person", "s00")
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


def _participant(show: str) -> str:
    return show.split("_")[0]


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


def test_the_headers_and_the_reports_quote_the_lab_figures(project: Path) -> None:
    text = (ROOT / "sweeps" / "oa_initial_weights.yaml").read_text()
    header = text.split("\nstudy:")[0]
    published = _load(project, "oa_initial_weights").file.report.published
    assert published is not None and published.split == "test"
    rows = [
        (Path(row.settings["initial_weights"]).name, row.stage, row.auc, row.dist)
        for row in published.rows
    ]
    assert rows == LAB_FIGURES["oa_initial_weights"]
    for _, _, auc, dist in rows:
        assert f"{auc:.4f} / {dist:.4f}" in header
    for name in ("oa_batch_chunk_grid", "oa_batch_chunk_grid_validated"):
        header = (ROOT / "sweeps" / f"{name}.yaml").read_text().split("\nstudy:")[0]
        # the header's table: "#   8               CUDA error!   CUDA error!   CUDA error!"
        rows = [re.split(r"\s{2,}", line.lstrip("#").strip()) for line in header.splitlines()]
        lab_cells = {
            (int(row[0]), chunk)
            for row in rows
            if row[0] in ("4", "8", "16") and len(row) == 4
            for chunk, cell in zip((2, 3, 4), row[1:], strict=True)
            if cell == "CUDA error!"
        }
        assert lab_cells == CUDA_ERRORS
        published = _load(project, name).file.report.published
        assert published is not None
        assert {
            (row.settings["batch_size"], row.settings["chunk_size"]) for row in published.rows
        } == CUDA_ERRORS
        assert {row.note for row in published.rows} == {"CUDA error!"}
    header = (ROOT / "sweeps" / "oa_vat_mixed.yaml").read_text().split("\nstudy:")[0]
    assert ", ".join(LAB_TRAIN_SHOWS) in " ".join(header.replace("#", " ").split())
    assert ", ".join(LAB_TEST_SHOWS) in " ".join(header.replace("#", " ").split())


def test_the_files_are_the_lab_experiments(project: Path) -> None:
    weights = _load(project, "oa_initial_weights")
    assert weights.file.repeats == 3 and weights.base.epochs == 3
    assert (weights.base.batch_size, weights.base.chunk_size) == (16, 3)
    assert weights.base.model.variant == "full" and weights.base.data.validation is None
    assert [Path(w).name for w in weights.space.values_of("initial_weights")] == [SPATIAL, TEMPORAL]
    objective = weights.file.objective
    assert (objective.split, objective.reduce, objective.optimistic) == ("test", "last", True)

    for name, split in (
        ("oa_batch_chunk_grid", "test"),
        ("oa_batch_chunk_grid_validated", "validation"),
    ):
        grid = _load(project, name)
        assert grid.space.values_of("batch_size") == (4, 8, 16)
        assert grid.space.values_of("chunk_size") == (2, 3, 4)
        assert grid.base.epochs == 15 and grid.base.model.variant == "full"
        assert grid.base.initial_weights == (project / "weights" / TEMPORAL).resolve()
        assert grid.studies_dir == project / "studies"
        assert grid.file.objective.split == split
        assert (grid.base.data.validation is None) == (split == "test")

    participants = _load(project, "oa_participants")
    data = participants.base.data
    assert participants.base.epochs == 15
    assert (participants.base.batch_size, participants.base.chunk_size) == (4, 3)
    names = participants.space.values_of("data.split")
    assert names == tuple(f"t{i}" for i in range(1, 6)) + tuple(f"vt{i}" for i in range(1, 6))
    assert [list(data.splits[f"t{i}"].test) for i in range(1, 6)] == LAB_TESTS
    assert [list(data.splits[f"vt{i}"].test) for i in range(1, 6)] == LAB_TESTS
    assert [list(data.splits[f"vt{i}"].validation) for i in range(1, 6)] == LAB_VALIDATIONS
    assert participants.file.report.columns == "data.split"

    mixed = _load(project, "oa_vat_mixed")
    train, test = mixed.base.data.train, mixed.base.data.test
    assert [list(spec.shows or ()) for spec in train] == [[], LAB_TRAIN_SHOWS]
    assert [list(spec.shows or ()) for spec in test] == [[], LAB_TEST_SHOWS]


def test_the_splits_resolve_on_the_lab_layouts(project: Path) -> None:
    layout = yaml.safe_load(LAYOUT.read_text())
    oa, vat = layout["objectattention"], layout["videoattentiontarget"]
    for name in ("oa_batch_chunk_grid", "oa_initial_weights"):
        for config in _trial_configs(_load(project, name)):
            splits = load_splits(config.data, config.data_dir)
            assert {clip.show for clip in splits.test} == set(oa["test"])
            assert {c.show for c in splits.train} == set(oa["train"])  # every training session
            assert splits.validation == []
    for config in _trial_configs(_load(project, "oa_batch_chunk_grid_validated")):
        splits = load_splits(config.data, config.data_dir)
        assert len({clip.show for clip in splits.validation}) == 2

    configs = _trial_configs(_load(project, "oa_participants"))
    assert len(configs) == 10
    for config in configs:
        splits = load_splits(config.data, config.data_dir)
        index = int(config.data.split[-1]) - 1
        tested = {_participant(c.show) for c in splits.test}
        held = {_participant(c.show) for c in splits.validation}
        trained = {_participant(c.show) for c in splits.train}
        assert tested == set(LAB_TESTS[index])
        expected_held = set(LAB_VALIDATIONS[index]) if config.data.split.startswith("v") else set()
        assert held == expected_held
        assert trained == set(layout["participants"]) - tested - held
        assert len(trained) == (5 if held else 7)
        # a participant's every session, whatever its subset: Shiva has one in each
        if "Shiva" in tested:
            assert {c.subset for c in splits.test if c.show.startswith("Shiva")} == {
                "train",
                "test",
            }

    mixed = _load(project, "oa_vat_mixed")
    (config,) = _trial_configs(mixed)
    splits = load_splits(config.data, config.data_dir)
    lab_folder = {"Sienfield": "Seinfeld", "Tartuffle": "Tartuffe"}
    train_shows = {lab_folder.get(show, show) for show in LAB_TRAIN_SHOWS}
    assert {c.show for c in splits.train} == set(oa["train"]) | train_shows
    assert {c.show for c in splits.test} == set(oa["test"]) | set(LAB_TEST_SHOWS)
    assert {c.dataset for c in splits.train} == {"objectattention", "videoattentiontarget"}
    # the miniature carries every show the lab named, and shows the experiment leaves out
    assert train_shows | set(LAB_TEST_SHOWS) == (set(vat["train"]) | set(vat["test"])) - set(
        layout["unused_shows"]
    )


def test_a_show_the_data_lacks_is_one_line_naming_the_key_and_the_closest(project: Path) -> None:
    raw = yaml.safe_load((project / "sweeps" / "oa_vat_mixed.yaml").read_text())
    del raw["data"]["show_aliases"]["Sienfield"]  # the lab's spelling, without its alias
    path = project / "sweeps" / "oa_vat_mixed.noalias.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (config,) = _trial_configs(load_sweep(path))
    with pytest.raises(DataError) as error:
        load_splits(config.data, config.data_dir)
    message = str(error.value)
    assert message.startswith("data.train.1.shows: 'Sienfield' matches no show folder")
    assert "closest: ['Seinfeld'" in message and "\n" not in message


def shrink(raw: dict[str, Any]) -> dict[str, Any]:
    """The same experiment, small: small model, 1 epoch, 1 seed, 2 values of the columns."""
    training = raw.setdefault("training", {})
    training.update({"model": {"variant": "small"}, "epochs": 1, "device": "cpu"})
    raw["repeats"] = 1
    columns = raw.get("report", {}).get("columns", "chunk_size")
    space = {}
    for name, values in raw.get("search_space", {}).items():
        if name == "data.split":
            space[name] = ["t1", "vt1"]  # one split of each kind
        else:
            space[name] = values[:2] if name in (columns, "initial_weights") else values[:1]
    raw["search_space"] = space
    return raw


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES)
def test_each_file_runs_shrunk_and_reports(project: Path, name: str) -> None:
    from vtd.sweep.execute.session import run_sweep
    from vtd.sweep.plan.config import OPTIMISTIC_NOTE
    from vtd.sweep.reporting.report.write import write_report
    from vtd.sweep.reporting.results import epochs_frame, trials_frame

    raw = shrink(yaml.safe_load((project / "sweeps" / f"{name}.yaml").read_text()))
    path = project / "sweeps" / f"{name}.shrunk.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    sweep = load_sweep(path)
    outcome = run_sweep(sweep)
    expected = 1 if name == "oa_vat_mixed" else 2
    assert len(outcome.ended) == expected
    trials = trials_frame(sweep)
    assert set(trials["state"]) == {"COMPLETE"}, trials["reason"].tolist()
    # every trial starts at epoch 0, its initial weights evaluated on test
    epochs = epochs_frame(sweep)
    assert set(epochs.groupby("number")["epoch"].min()) == {0}
    assert epochs.loc[epochs["epoch"] == 0, "test_auc"].notna().all()
    assert set(trials["best_epoch"]) == {1}
    files = write_report(sweep, parent_run_id=outcome.parent_run_id)
    text = files.report.read_text()
    rows = re.findall(r"^\| C\d+ \|", text, flags=re.MULTILINE)
    assert len(rows) == len(outcome.ended)  # one table row per configuration
    assert "grid_test_auc" in files.plots and "grid_test_dist" in files.plots
    assert (OPTIMISTIC_NOTE in text) == (sweep.file.objective.split == "test")
    if sweep.file.report.published is None:
        assert "Published (lab)" not in text
        return
    section = text.split("## Published (lab) vs this study")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")][1:]
    if name == "oa_initial_weights":
        assert len(table) == 4  # 2 checkpoints x (not trained, after training)
        for line in table:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            assert cells[4] != "—" and cells[5] != "—" and cells[6] == "n=1"
        assert "0.8569, 0.8334, 0.8017" in section and "0.7803" in section
        # "not trained" is our epoch 0 on test, read from MLflow
        number = next(
            n
            for n, w in zip(trials["number"], trials["initial_weights"], strict=True)
            if TEMPORAL in str(w)
        )
        zero_shot = epochs[(epochs["number"] == number) & (epochs["epoch"] == 0)]["test_auc"]
        (line,) = [row for row in table if TEMPORAL in row and "not trained" in row]
        assert f"| {zero_shot.iloc[0]:.3f} |" in line
    else:  # the lab's CUDA errors, beside cells this shrunk study did not run
        assert len(table) == len(CUDA_ERRORS)
        assert all("CUDA error!" in line for line in table)
        assert all("no such configuration in this study" in line for line in table)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"settings": {"batch_sizes": 8}, "note": "x"}, "'batch_sizes' is not a training setting"),
        ({"settings": {"batch_size": 8}}, "a published row needs auc, dist or a note"),
        ({"settings": {"batch_size": 8}, "auc": 1.5}, "less than or equal to 1"),
    ],
)
def test_a_bad_published_row_is_one_line_naming_it(project: Path, row: dict, message: str) -> None:
    from vtd.sweep.plan.config import SweepFileError

    raw = yaml.safe_load((project / "sweeps" / "oa_batch_chunk_grid.yaml").read_text())
    raw["report"]["published"]["rows"] = [row]
    path = project / "sweeps" / "bad_published.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(SweepFileError) as error:
        load_sweep(path)
    text = str(error.value)
    assert "report" in text and "published" in text and message in text and "\n" not in text
