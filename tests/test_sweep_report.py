"""report.md, its tables and plots for a real study (tests/_report_study.py); the MLflow runs
that hold them; `vtd-sweep report` and the report at the end of `vtd-sweep run`.

Expected numbers are computed here from MLflow's metric histories and Optuna's trials.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import defaultdict
from pathlib import Path

import optuna
import pandas as pd
import pytest
from _sweepfiles import demo_yaml, sweep_yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

from tests._report_study import (  # noqa: F401 - the study's fixtures
    BuiltStudy,
    built_fixture,
    metrics_fixture,
    sweep_fixture,
)
from vtd.cli import main
from vtd.sweep.execute.session import prepare
from vtd.sweep.plan.config import Sweep, SweepFileError, load_sweep
from vtd.sweep.reporting._tables import load_tables
from vtd.sweep.reporting.plots.grid import classify_cells
from vtd.sweep.reporting.plots.heatmap import heatmap_figure, heatmap_values
from vtd.sweep.reporting.plots.shared import GridLayout
from vtd.sweep.reporting.report.files import ReportFiles
from vtd.sweep.reporting.report.write import write_report
from vtd.sweep.store.study import StudyError

SPLIT_TITLES = {"val": "validation", "test": "test"}
METRIC_TITLES = {"auc": "AUC", "dist": "distance"}


@pytest.fixture(scope="module")
def files(sweep: Sweep, built: BuiltStudy) -> ReportFiles:
    return write_report(sweep, parent_run_id=built.parent_run_id)


@pytest.fixture(scope="module")
def complete_by_cell(sweep: Sweep) -> dict[str, list[optuna.trial.FrozenTrial]]:
    study = optuna.load_study(study_name=sweep.study_name, storage=sweep.storage_url)
    cells: dict[str, list] = defaultdict(list)
    for trial in study.trials:
        if trial.state == TrialState.COMPLETE:
            cells[trial.user_attrs["cell"]].append(trial)
    return cells


def md_table(text: str, section: str) -> list[dict[str, str]]:
    """The first table after the `## section` heading, as header -> cell dicts."""
    body = text.split(f"## {section}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(body) if line.startswith("|"))
    table = itertools.takewhile(lambda line: line.startswith("|"), body[start:])
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table]
    return [dict(zip(header, row, strict=True)) for row in rows]


def spread_text(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def test_the_files_are_written_and_the_plots_embedded(files: ReportFiles, sweep: Sweep) -> None:
    folder = sweep.study_dir
    assert files.report == folder / "report.md"
    assert sorted(files.plots) == sorted(
        [f"grid_{s}_{m}" for s in ("val", "test") for m in ("auc", "dist")]
        + ["heatmap_val", "heatmap_test"]
    )
    assert all(path.stat().st_size > 10_000 for path in files.plots.values())
    text = files.report.read_text()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(f"plots/{name}.png" for name in files.plots)
    assert all((folder / link).is_file() for link in links)
    assert "- sampler: grid; repeats: 2 seeds per configuration" in text
    assert "- objective: the best epoch's validation AUC of each trial (maximize)" in text
    assert "optimistic" not in text


def test_the_configuration_table_holds_the_mlflow_metrics(
    files: ReportFiles, complete_by_cell: dict, metrics: dict
) -> None:
    table = pd.read_csv(files.tables["configurations"]).set_index("configuration")
    rows = {row["#"]: row for row in md_table(files.report.read_text(), "Configurations")}
    assert len(table) == len(rows) == 8
    assert set(complete_by_cell) == {
        f"batch_size=1, chunk_size={chunk}, initial_weights={weights}"
        for chunk, weights in ((2, "fresh"), (2, "weights/other.pt"), (4, "weights/other.pt"))
    }
    for cell, trials in complete_by_cell.items():
        csv_row = table.loc[cell]
        md_row = rows[csv_row["id"]]
        epochs = [t.user_attrs["best_epoch"] for t in trials]
        assert md_row["best epoch"] == ", ".join(map(str, epochs))
        assert md_row["repeats"] == f"{len(trials)}/2"
        for key in ("val_auc", "val_dist", "test_auc", "test_dist"):
            values = [metrics[t.number][key][t.user_attrs["best_epoch"]] for t in trials]
            assert csv_row[f"{key}_mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
            if len(values) > 1:
                assert csv_row[f"{key}_std"] == pytest.approx(statistics.stdev(values), rel=1e-9)
            split, metric = key.split("_")
            assert md_row[f"{SPLIT_TITLES[split]} {METRIC_TITLES[metric]}"] == spread_text(values)
    # the states of the cells that did not train
    states = {row["#"]: row["state"] for row in rows.values()}
    by_id = table.reset_index().set_index("id")["configuration"].to_dict()
    for config_id, state in states.items():
        cell = by_id[config_id]
        if "batch_size=2, chunk_size=2" in cell:
            assert state == "PRUNED: out of memory (CUDA: tried to allocate 2.0 GB (injected))"
        elif "batch_size=2, chunk_size=4" in cell:
            assert state == "PRUNED: out of memory (dominated by batch 2, chunk 2 (injected))"
        elif cell == "batch_size=1, chunk_size=4, initial_weights=fresh":
            assert state == "FAILED: InjectedFault: injected fault at epoch… (injected)"
        elif cell == "batch_size=1, chunk_size=4, initial_weights=weights/other.pt":
            assert state == "1 complete, 1 failed (killed by SIGKILL (injected))"
        else:
            assert state == "COMPLETE"


def test_the_weights_by_data_table_holds_the_final_epoch_test_metrics(
    files: ReportFiles, complete_by_cell: dict, metrics: dict
) -> None:
    rows = md_table(files.report.read_text(), "Initial weights × training data")
    assert list(rows[0]) == ["initial weights", "objectattention"]
    shown = {row["initial weights"]: row["objectattention"] for row in rows}
    for cell, trials in complete_by_cell.items():
        params = trials[0].params
        label = (
            f"{Path(params['initial_weights']).name}, batch size {params['batch_size']}, "
            f"chunk size {params['chunk_size']}"
        )
        auc = [metrics[t.number]["test_auc"][max(metrics[t.number]["test_auc"])] for t in trials]
        dist = [metrics[t.number]["test_dist"][max(metrics[t.number]["test_dist"])] for t in trials]
        assert max(max(metrics[t.number]["test_auc"]) for t in trials) == 2  # final epoch
        assert shown[label] == f"{spread_text(auc)} / {spread_text(dist)} (n={len(trials)})", cell
    assert shown["other.pt, batch size 2, chunk size 4"] == (
        "— (PRUNED: out of memory (dominated by batch 2, chunk 2 (injected)))"
    )


def test_indistinguishable_pairs_follow_the_stated_rule(
    files: ReportFiles, complete_by_cell: dict, metrics: dict
) -> None:
    text = files.report.read_text()
    assert "|mean A − mean B| ≤ max(range A, range B)" in text
    table = pd.read_csv(files.tables["configurations"]).set_index("configuration")
    twice = {cell: trials for cell, trials in complete_by_cell.items() if len(trials) == 2}
    assert len(twice) == 2  # the two complete batch 1, chunk 2 configurations
    (a, first), (b, second) = sorted(twice.items())
    for metric in ("auc", "dist"):
        key = f"test_{metric}"
        values = [
            [metrics[t.number][key][t.user_attrs["best_epoch"]] for t in trials]
            for trials in (first, second)
        ]
        difference = abs(statistics.fmean(values[0]) - statistics.fmean(values[1]))
        spread = max(max(v) - min(v) for v in values)
        line = (
            f"- {table.loc[a, 'id']} ({a}) vs {table.loc[b, 'id']} ({b}): "
            f"{statistics.fmean(values[0]):.3f} vs {statistics.fmean(values[1]):.3f}"
        )
        assert (line in text) == (difference <= spread), (metric, difference, spread)
        verdicts = pd.read_csv(files.tables["pairs"])
        (verdict,) = verdicts[verdicts["metric"] == key].to_dict("records")
        assert verdict["distinguishable"] == (difference > spread)
    one_repeat = table.loc["batch_size=1, chunk_size=4, initial_weights=weights/other.pt", "id"]
    assert f"Not compared (one complete repeat, spread unknown): {one_repeat}." in text


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, "report"):
        if item.is_dir:
            found |= {sub.path for sub in client.list_artifacts(run_id, item.path)}
        else:
            found.add(item.path)
    return found


def test_the_parent_run_holds_the_report(files: ReportFiles, sweep: Sweep) -> None:
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    assert files.run_id is not None
    assert client.get_run(files.run_id).data.tags["vtd.command"] == "run"
    expected = {"report/report.md", "report/configurations.csv", "report/weights_by_data.csv"}
    expected |= {"report/pairs.csv"} | {f"report/plots/{p.name}" for p in files.plots.values()}
    assert _artifacts(client, files.run_id) == expected


def test_the_commands_write_and_log_the_report(
    files: ReportFiles, built: BuiltStudy, sweep: Sweep, capsys: pytest.CaptureFixture[str]
) -> None:
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    files.report.unlink()
    assert main(["report", str(built.sweep_path)]) == 0
    assert files.report.is_file()
    assert f"report: {files.report}" in capsys.readouterr().out
    # `vtd-sweep report` updates the latest parent run: the only one so far
    run = client.get_run(built.parent_run_id)
    assert "report_written" in run.data.tags

    # `vtd-sweep run` on the finished study runs nothing, then writes and logs the report
    files.report.unlink()
    assert main(["run", str(built.sweep_path)]) == 0
    assert files.report.is_file()
    experiment = client.get_experiment_by_name(sweep.study_name)
    parents = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`vtd.command` = 'run'",
        order_by=["attributes.start_time DESC"],
    )
    latest = parents[0].info.run_id
    assert latest != built.parent_run_id
    assert "report/report.md" in _artifacts(client, latest)


def test_the_heatmaps_show_the_configuration_tables_values(
    files: ReportFiles,
    built: BuiltStudy,
    sweep: Sweep,
    complete_by_cell: dict,
    metrics: dict,
) -> None:
    assert main(["report", str(built.sweep_path)]) == 0  # the files as the CLI writes them
    table = pd.read_csv(files.tables["configurations"]).set_index("configuration")
    tables = load_tables(sweep)
    layout = GridLayout.of(tables)
    checked = 0
    for prefix in ("val", "test"):
        figure = heatmap_figure(tables, layout, split=prefix)
        assert "selected on validation; test metrics at that epoch" in figure.get_suptitle()
        drawn = {text.get_text() for ax in figure.axes for text in ax.texts}
        for metric in ("auc", "dist"):
            for key in layout.line_keys:
                for (batch, chunk), cell in heatmap_values(
                    tables, layout, key, prefix, metric
                ).items():
                    if cell.mean is None:
                        continue
                    configuration = (
                        f"batch_size={batch}, chunk_size={chunk}, initial_weights={key[0]}"
                    )
                    row = table.loc[configuration]
                    assert cell.mean == pytest.approx(row[f"{prefix}_{metric}_mean"], rel=1e-12)
                    # both read at the epoch selected on validation: never test's own best
                    trials = complete_by_cell[configuration]
                    at_selected = [
                        metrics[t.number][f"{prefix}_{metric}"][t.user_attrs["best_epoch"]]
                        for t in trials
                    ]
                    assert cell.mean == pytest.approx(statistics.fmean(at_selected), rel=1e-12)
                    assert any(text.startswith(f"{cell.mean:.3f}") for text in drawn)
                    checked += 1
    assert checked == 2 * 2 * len(complete_by_cell)
    text = files.report.read_text()
    assert "selected on validation; test metrics at that epoch" in text


TEST_SELECTED = sweep_yaml(
    "nothing-run-yet",
    {"batch_size": [1, 2]},
    objective={"metric": "dist", "split": "test"},
    training={"device": None},
    demo=demo_yaml(2, data={"validation": None}),
)


def test_a_study_selected_on_test_with_nothing_finished(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(TEST_SELECTED)
    sweep = load_sweep(path)
    with pytest.raises(StudyError, match="does not exist yet"):
        write_report(sweep)
    prepare(sweep)  # the study and its queue, no trial run
    files = write_report(sweep)
    text = files.report.read_text()
    assert "> **selected on the test split: optimistic**" in text
    assert "- **selected on the test split: optimistic**" in text
    rows = md_table(text, "Configurations")
    assert [row["state"] for row in rows] == ["not finished: waiting or running"] * 2
    assert "No pair can be judged: 2 configuration(s) have fewer than 2 complete repeats." in text
    # no validation split, no epoch yet: test grids whose cells say so, no heatmap
    assert sorted(files.plots) == ["grid_test_auc", "grid_test_dist"]
    tables = load_tables(sweep)
    layout = GridLayout.of(tables)
    cells = classify_cells(tables, layout)
    assert {(cell.kind, cell.text) for cell in cells.values()} == {("not_run", "not run yet")}
    # no parent run yet: a run named "report" holds it
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    run = client.get_run(files.run_id)
    assert run.info.run_name == "report" and run.data.tags["vtd.command"] == "report"
    assert "report/report.md" in _artifacts(client, files.run_id)


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (
            "{rows: chunk_size}",
            "report.rows: chunk_size is also the columns setting; pick another",
        ),
        ("{lines: lrr}", "report.lines: 'lrr' is not a training setting"),
        ("{columns: model}", "report.columns: model is a group of settings"),
        ("{rows: batch_size, reduce: worst}", "report.reduce: Input should be 'best' or 'last'"),
    ],
)
def test_bad_report_settings_are_one_line_errors(tmp_path: Path, report: str, message: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(TEST_SELECTED + f"report: {report}\n")
    with pytest.raises(SweepFileError) as raised:
        load_sweep(path)
    assert str(raised.value).startswith(f"{path}:")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
