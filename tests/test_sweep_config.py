"""The sweep file: defaults, paths relative to the file, and one-line errors naming key and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _sweepfiles import files_sweep_yaml

from vtd.sweep.plan.config import SweepFileError, load_sweep
from vtd.sweep.plan.space import apply_params

GOOD = files_sweep_yaml(
    "grid-test",
    {
        "batch_size": [2, 4, 8],
        "chunk_size": [2, 3],
        "initial_weights": ["fresh", "weights/start.pt"],
    },
    repeats=2,
    training={"epochs": 2, "lr": "1e-4"},
)


def write(folder: Path, text: str, name: str = "sweep.yaml") -> Path:
    (folder / "weights").mkdir(exist_ok=True)
    (folder / "weights" / "start.pt").write_bytes(b"not read when the file is validated")
    path = folder / name
    path.write_text(text)
    return path


def error_of(folder: Path, text: str) -> str:
    with pytest.raises(SweepFileError) as caught:
        load_sweep(write(folder, text))
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(str(folder / "sweep.yaml")), message
    return message.removeprefix(str(folder / "sweep.yaml"))


def test_defaults_and_paths_relative_to_the_file(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, GOOD))
    studies = tmp_path.resolve() / "studies"
    assert sweep.storage_url == f"sqlite:///{studies / 'optuna.db'}"
    assert sweep.tracking_uri == f"sqlite:///{studies / 'mlflow.db'}"
    assert sweep.artifact_location == str(studies / "mlflow-artifacts" / "grid-test")
    assert sweep.base.data_dir == tmp_path.resolve()
    assert sweep.direction == "maximize"
    assert sweep.base.checkpoint_metric == "auc"  # best.pt is best by the objective's metric
    assert sweep.base.lr == pytest.approx(1e-4)  # YAML reads 1e-4 as a string
    assert len(sweep.space.grid_cells()) == 12
    assert sweep.space.values_of("initial_weights") == ("fresh", "weights/start.pt")
    trial = sweep.weights.validate(
        apply_params(sweep.base_raw, {"initial_weights": "weights/start.pt"})
    )
    assert trial.initial_weights == (tmp_path / "weights" / "start.pt").resolve()


def test_explicit_relative_urls_resolve_against_the_file(tmp_path: Path) -> None:
    text = GOOD + "storage: sqlite:///runs/o.db\ntracking_uri: sqlite:///runs/m.db\n"
    sweep = load_sweep(write(tmp_path, text))
    assert sweep.storage_url == f"sqlite:///{tmp_path.resolve() / 'runs' / 'o.db'}"
    assert sweep.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'runs' / 'm.db'}"


def test_direction_defaults_per_metric(tmp_path: Path) -> None:
    for metric, direction in (("auc", "maximize"), ("ap", "maximize"), ("dist", "minimize")):
        text = GOOD + f"objective: {{metric: {metric}}}\n"
        assert load_sweep(write(tmp_path, text)).direction == direction


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # broken YAML: the line where the parser stopped
        (
            ("sampler: grid", "sampler: [grid"),
            r"^:3: YAML syntax error: .* \(while parsing a flow sequence from line 2\)",
        ),
        # a misspelt top-level key, with a suggestion
        (
            ("repeats: 2", "repeat: 2"),
            r"^:3: repeat: unknown key 'repeat' \(did you mean 'repeats'\?\)",
        ),
        # an unknown sampler
        (("sampler: grid", "sampler: bayes"), r"^:2: sampler\.name: Input should be 'grid', 'tpe'"),
        # an unknown search-space key names the key and suggests the right one
        (
            ("  chunk_size: [2, 3]", "  chunk_sise: [2, 3]"),
            r"^:13: search_space\.chunk_sise: unknown training setting 'chunk_sise' "
            r"\(did you mean 'chunk_size'\?\)",
        ),
        # a search-space value the training config refuses, with its index
        (
            ("[2, 4, 8]", "[2, 0, 8]"),
            r"^:12: search_space\.batch_size\[1\]: "
            r"Input should be greater than or equal to 1 \(got 0\)",
        ),
        # a wrong type in the training defaults
        (("epochs: 2", "epochs: two"), r"^:9: training\.epochs: Input should be a valid integer"),
        # a key given twice
        (("repeats: 2", "repeats: 2\nrepeats: 3"), r"^:4: key 'repeats' is given twice"),
        # a data key misspelt (vtd.data's DataConfig)
        (
            ("validation: {groups: 1}", "validaton: {groups: 1}"),
            r"^:6: data\.validaton: unknown key",
        ),
        # a range in a grid
        (("[2, 4, 8]", "{low: 2, high: 8}"), r"^:12: search_space\.batch_size: a grid takes lists"),
        # the seed is not a search dimension
        (
            ("  chunk_size: [2, 3]", "  seed: [0, 1]"),
            r"^:13: search_space\.seed: seeds come from `repeats`",
        ),
        # a missing checkpoint file
        (
            ("weights/start.pt]", "weights/missing.pt]"),
            r"^:14: search_space\.initial_weights\[1\]: no checkpoint file",
        ),
        # demo-pretrained without demo data
        (
            ("weights/start.pt]", "demo-pretrained]"),
            r"^:14: search_space\.initial_weights\[1\]: demo-pretrained needs the demo data",
        ),
        # nested field paths are checked too
        (
            ("  chunk_size: [2, 3]", "  model.lstm_dropout: [0.1, 1.5]"),
            r'^:13: search_space\["model\.lstm_dropout"\]\[1\]: Input should be less than 1',
        ),
        # MLflow's file store is refused
        (
            ("sampler: grid", "sampler: grid\ntracking_uri: ./mlruns"),
            r"^:3: tracking_uri: MLflow's file store is not supported",
        ),
        # a grid takes no n_trials; tpe needs it
        (("sampler: grid", "sampler: grid\nn_trials: 5"), r"^:3: n_trials: a grid runs every cell"),
        (("sampler: grid", "sampler: tpe"), r"^: n_trials: the tpe sampler needs n_trials"),
        # no validation split for a validation objective
        (
            ("  validation: {groups: 1}\n", ""),
            r"^: objective\.split: the data has no validation split",
        ),
        # the sweep sets the output folder itself
        (
            ("epochs: 2", "epochs: 2\n  output_dir: out"),
            r"^:10: training\.output_dir: is set by the sweep",
        ),
        # a pruner setting that belongs to another pruner
        (
            ("repeats: 2", "repeats: 2\npruner: {name: median, reduction_factor: 3}"),
            r"^:4: pruner: reduction_factor is not a setting of the median pruner",
        ),
    ],
)
def test_one_line_errors(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    message = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert re.search(expected, message), message


def test_contrary_direction_is_an_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD + "objective: {metric: dist, direction: maximize}\n")
    assert "objective: direction maximize contradicts metric dist (lower is better)" in message


def test_fault_when_keys_must_be_settings(tmp_path: Path) -> None:
    text = GOOD + "faults: [{kind: exception, when: {batch_sise: 2}}]\n"
    assert "faults[0].when.batch_sise: not a training setting" in error_of(tmp_path, text)


def test_memory_cap_fault_needs_a_cap(tmp_path: Path) -> None:
    text = GOOD + "faults: [{kind: memory_cap}]\n"
    assert "faults[0].kind: needs memory_cap_mb" in error_of(tmp_path, text)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(SweepFileError, match="no such sweep file"):
        load_sweep(tmp_path / "absent.yaml")
    assert "a sweep file is a mapping" in error_of(tmp_path, "- just\n- a list\n")


def test_ranges_for_tpe(tmp_path: Path) -> None:
    text = GOOD.replace("sampler: grid", "sampler: {name: tpe, seed: 3}\nn_trials: 4").replace(
        "  chunk_size: [2, 3]",
        "  lr: {low: 1.0e-5, high: 1.0e-3, log: true}\n  chunk_size: {low: 2, high: 6, step: 2}",
    )
    sweep = load_sweep(write(tmp_path, text))
    distributions = sweep.space.distributions()
    assert type(distributions["lr"]).__name__ == "FloatDistribution" and distributions["lr"].log
    assert type(distributions["chunk_size"]).__name__ == "IntDistribution"
    assert distributions["chunk_size"].step == 2
    bad = text.replace("high: 6, step: 2", "high: 6, step: 1.5")
    assert "search_space.chunk_size.step: expected a positive int" in error_of(tmp_path, bad)


def test_a_nan_loss_fault_needs_an_epoch_that_trains(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD + "faults: [{kind: nan_loss, epoch: 0}]\n")
    assert "faults[0]" in message and "nan_loss happens while an epoch trains" in message
