"""Plots of a real study (tests/_report_study.py): which cells are marked, and the numbers drawn.

Expectations are read from Optuna and MLflow directly, not from the tables the plots use.
"""

from __future__ import annotations

import re
import statistics
import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import matplotlib
import optuna
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.patches import Rectangle
from optuna.trial import TrialState

from tests._report_study import (  # noqa: F401 - the study's fixtures
    BuiltStudy,
    built_fixture,
    metrics_fixture,
    sweep_fixture,
)
from vtd.sweep.plan.config import Sweep, load_sweep
from vtd.sweep.reporting._tables import StudyTables, load_tables, out_of_memory_figure
from vtd.sweep.reporting.plots.grid import classify_cells, grid_figure
from vtd.sweep.reporting.plots.heatmap import heatmap_figure, heatmap_values
from vtd.sweep.reporting.plots.shared import GridLayout
from vtd.sweep.reporting.plots.views import OPTUNA_VIEWS, optuna_views, optuna_views_for
from vtd.sweep.store.record import OutOfMemory, to_json

OTHER = "weights/other.pt"
MB = 2**20


@pytest.fixture(scope="module")
def tables(sweep: Sweep) -> StudyTables:
    return load_tables(sweep)


@pytest.fixture(scope="module")
def optuna_trials(sweep: Sweep) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=sweep.study_name, storage=sweep.storage_url).trials


def _by_cell(trials: list[optuna.trial.FrozenTrial]) -> dict[tuple[int, int], list]:
    cells: dict[tuple[int, int], list] = defaultdict(list)
    for trial in trials:
        cells[(trial.params["batch_size"], trial.params["chunk_size"])].append(trial)
    return cells


def _numbers(trials: list, **params: object) -> list[int]:
    return [
        t.number for t in trials if all(t.params[key] == value for key, value in params.items())
    ]


def test_the_cells_marked_out_of_memory_are_the_pruned_ones(
    tables: StudyTables, optuna_trials: list
) -> None:
    def ran_out(trial: optuna.trial.FrozenTrial) -> bool:
        attrs = trial.user_attrs
        return trial.state == TrialState.PRUNED and bool(
            attrs.get("out_of_memory") or attrs.get("oom_dominated")
        )

    by_cell = _by_cell(optuna_trials)
    expected = {cell for cell, trials in by_cell.items() if all(map(ran_out, trials))}
    assert expected == {(2, 2), (2, 4)}  # the fixture's injected fault and what it dominates

    layout = GridLayout.of(tables)
    assert (layout.rows, layout.columns, layout.lines) == (
        "batch_size",
        "chunk_size",
        "initial_weights",
    )
    assert layout.row_values == (1, 2) and layout.column_values == (2, 4)
    assert layout.line_keys == (("fresh",), (OTHER,))
    cells = classify_cells(tables, layout)
    assert {cell for cell, drawn in cells.items() if drawn.kind == "out_of_memory"} == expected
    for cell in expected:
        assert sorted(cells[cell].out_of_memory) == sorted(t.number for t in by_cell[cell])

    # the figure that triggered it: the injected CUDA error, and the dominating cell
    ran = [t for t in by_cell[(2, 2)] if "dominated_by" not in t.user_attrs]
    asked = re.search(r"allocate (\S+) GiB", ran[0].user_attrs["reason"]).group(1)
    asked_gb = f"{float(asked):.1f} GB"
    assert cells[(2, 2)].text == f"out of memory\nCUDA: tried to allocate {asked_gb} (injected)"
    assert cells[(2, 4)].text == "out of memory\ndominated by batch 2, chunk 2 (injected)"

    # a cell with curves and a failed line says so; a clean cell has no notes; none is blank
    mixed = cells[(1, 4)]
    assert mixed.kind == "curves"
    failed = [t for t in by_cell[(1, 4)] if t.state == TrialState.FAIL]
    assert sorted(mixed.failed) == sorted(t.number for t in failed) and len(failed) == 3
    assert mixed.notes == (
        "fresh: failed (InjectedFault: injected faul… (injected))",
        "other.pt: 1 of 2 failed",
    )
    assert cells[(1, 2)].kind == "curves" and cells[(1, 2)].notes == ()
    assert all(drawn.kind == "curves" or drawn.text for drawn in cells.values())


def test_a_cell_whose_trials_all_failed_says_why(
    tmp_path: Path, built: BuiltStudy, sweep: Sweep
) -> None:
    # The same study laid out with initial weights as rows: fresh x batch 1 holds the
    # complete chunk-2 trials and the failed chunk-4 ones; fresh x batch 2 only ran out.
    custom = built.sweep_path.with_name("by-weights.yaml")
    custom.write_text(
        built.sweep_path.read_text()
        + "report: {rows: initial_weights, columns: batch_size, lines: chunk_size}\n"
    )
    tables = load_tables(load_sweep(custom))
    layout = GridLayout.of(tables)
    assert layout.row_values == ("fresh", OTHER) and layout.line_keys == ((2,), (4,))
    cells = classify_cells(tables, layout)
    assert cells[("fresh", 1)].kind == "curves"
    assert cells[("fresh", 1)].notes == ("4: failed (InjectedFault: injected faul… (injected))",)
    assert cells[(OTHER, 1)].notes == ("4: 1 of 2 failed",)
    assert {cell for cell, drawn in cells.items() if drawn.kind == "out_of_memory"} == {
        ("fresh", 2),
        (OTHER, 2),
    }
    figure = grid_figure(tables, layout, cells)
    assert [ax.get_title().splitlines()[0] for ax in figure.axes] == [
        "initial weights fresh · batch size 1",
        "initial weights fresh · batch size 2",
        "initial weights other.pt · batch size 1",
        "initial weights other.pt · batch size 2",
    ]


def _mean_curve(metrics: dict, numbers: list[int], key: str) -> list[float]:
    epochs = sorted(metrics[numbers[0]][key])
    return [statistics.fmean(metrics[n][key][epoch] for n in numbers) for epoch in epochs]


@pytest.mark.parametrize(("split", "metric"), [("val", "auc"), ("test", "dist")])
def test_the_grid_draws_the_mlflow_metrics(
    tables: StudyTables, optuna_trials: list, metrics: dict, split: str, metric: str
) -> None:
    layout = GridLayout.of(tables)
    cells = classify_cells(tables, layout)
    figure = grid_figure(tables, layout, cells, split=split, metric=metric)
    axes = figure.axes
    assert len(axes) == 4
    grid = {
        (row, col): axes[i * 2 + j] for i, row in enumerate((1, 2)) for j, col in enumerate((2, 4))
    }
    key = f"{split}_{metric}"

    # batch 1, chunk 2: a line per initial weights, the mean of the two seeds, with a band
    clean = grid[(1, 2)]
    drawn = [list(line.get_ydata()) for line in clean.get_lines()]
    complete = [t for t in optuna_trials if t.state == TrialState.COMPLETE]
    expected = [
        _mean_curve(metrics, _numbers(complete, batch_size=1, chunk_size=2, initial_weights=w), key)
        for w in ("fresh", OTHER)
    ]
    assert len(drawn) == 2
    for line, values in zip(drawn, expected, strict=True):
        assert line == pytest.approx(values, rel=1e-12)
    # each curve starts at epoch 0: the initial weights, evaluated before training
    assert [list(line.get_xdata()) for line in clean.get_lines()] == [[0, 1, 2], [0, 1, 2]]
    assert sum(isinstance(c, PolyCollection) for c in clean.collections) == 2
    # batch 1, chunk 4: only the checkpoint's line (fresh failed), only its complete seed:
    # the killed seed's first epoch is in MLflow but not drawn
    mixed = grid[(1, 4)]
    assert len(mixed.get_lines()) == 1
    killed = [t for t in optuna_trials if t.user_attrs.get("signal") == "SIGKILL"]
    assert len(killed) == 1 and key in metrics[killed[0].number]
    assert list(mixed.get_lines()[0].get_ydata()) == pytest.approx(
        _mean_curve(metrics, _numbers(complete, batch_size=1, chunk_size=4), key), rel=1e-12
    )
    assert not any(isinstance(c, PolyCollection) for c in mixed.collections)
    # out-of-memory cells: no curve, hatched, labelled
    for cell in ((2, 2), (2, 4)):
        assert grid[cell].get_lines() == []
        assert any(isinstance(p, Rectangle) and p.get_hatch() for p in grid[cell].patches)
        assert grid[cell].texts[0].get_text().startswith("out of memory\n")

    # shared y axes, labelled axes with units, a legend below the grid that covers no cell
    assert all(axes[0].get_shared_y_axes().joined(axes[0], ax) for ax in axes)
    assert all(ax.get_xlabel() == "epoch" for ax in axes[2:])
    unit = "AUC" if metric == "auc" else "distance (normalised image units)"
    split_name = "validation" if split == "val" else "test"
    assert figure.get_supylabel().startswith(f"{split_name} {unit}")
    figure.canvas.draw()
    legend = figure.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in axes)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels[:2] == ["fresh", "other.pt"] and "out of memory" in labels
    assert any(label.startswith("band: min-max over repeats") for label in labels)


def test_heatmaps_show_each_cells_selected_epoch_and_hatch_out_of_memory(
    tables: StudyTables, optuna_trials: list, metrics: dict
) -> None:
    layout = GridLayout.of(tables)
    complete = [t for t in optuna_trials if t.state == TrialState.COMPLETE]
    numbers = _numbers(complete, batch_size=1, chunk_size=2, initial_weights=OTHER)
    selected = {t.number: t.user_attrs["best_epoch"] for t in complete}
    texts = {}
    for metric in ("auc", "dist"):
        values = heatmap_values(tables, layout, (OTHER,), "val", metric)
        # distance too at the epoch of the best validation AUC (the objective), not its own best
        per_trial = [metrics[n][f"val_{metric}"][selected[n]] for n in numbers]
        mean, std = statistics.fmean(per_trial), statistics.stdev(per_trial)
        assert values[(1, 2)].mean == pytest.approx(mean, rel=1e-12)
        assert values[(1, 2)].std == pytest.approx(std, rel=1e-9)
        assert values[(1, 2)].count == 2
        assert values[(2, 2)].kind == values[(2, 4)].kind == "out_of_memory"
        assert values[(2, 2)].injected and values[(2, 4)].injected  # drawn "(injected)"
        texts[metric] = f"{mean:.3f}\n±{std:.3f}"
    one_seed = heatmap_values(tables, layout, (OTHER,), "val", "auc")[(1, 4)]
    assert (one_seed.count, one_seed.total) == (1, 2)  # annotated "(1 of 2 seeds)"
    fresh = heatmap_values(tables, layout, ("fresh",), "val", "auc")
    assert fresh[(1, 4)].kind == "failed" and fresh[(1, 4)].mean is None
    assert fresh[(1, 4)].injected and not values[(1, 2)].injected

    figure = heatmap_figure(tables, layout, split="val")
    panels = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    # a row per metric (AUC, distance), a panel per initial weights (fresh, other.pt)
    assert [ax.get_title() for ax in panels] == [
        "AUC · initial weights fresh",
        "AUC · initial weights other.pt",
        "distance · initial weights fresh",
        "distance · initial weights other.pt",
    ]
    for ax in panels:
        hatched = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
        assert len(hatched) == 2
    assert texts["auc"] in [t.get_text() for t in panels[1].texts]
    assert texts["dist"] in [t.get_text() for t in panels[3].texts]


def test_optuna_views_are_drawn_without_touching_global_state(
    tmp_path: Path, sweep: Sweep, tables: StudyTables
) -> None:
    from matplotlib import pyplot

    assert optuna_views_for(tables) == ()  # a grid without pruner: the grid figure says it all
    study = optuna.load_study(study_name=sweep.study_name, storage=sweep.storage_url)
    before = dict(matplotlib.rcParams)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written = optuna_views(tables, study, tmp_path, which=OPTUNA_VIEWS)
    assert sorted(written) == sorted(OPTUNA_VIEWS)
    assert all(path.stat().st_size > 10_000 for path in written.values())
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
    assert dict(matplotlib.rcParams) == before  # optuna's ggplot style was undone
    assert pyplot.get_fignums() == []


def test_a_cell_without_trials_says_so_in_the_grid_and_the_heatmap(tables: StudyTables) -> None:
    # As in a tpe or random study that never sampled a listed batch x chunk pair.
    trials = tables.trials
    unsampled = (trials["batch_size"] == 1) & (trials["chunk_size"] == 4)
    sparse = replace(tables, trials=trials[~unsampled])
    layout = GridLayout.of(sparse)
    assert (layout.row_values, layout.column_values) == ((1, 2), (2, 4))
    cell = classify_cells(sparse, layout)[(1, 4)]
    assert (cell.kind, cell.text, cell.numbers) == ("not_run", "no trial", ())
    for key in layout.line_keys:
        assert heatmap_values(sparse, layout, key, "val", "auc")[(1, 4)].kind == "not_run"
    panels = [ax for ax in heatmap_figure(sparse, layout).axes if ax.get_label() != "<colorbar>"]
    assert all("not run" in [t.get_text() for t in ax.texts] for ax in panels)


@pytest.mark.parametrize(
    ("outcome", "figure"),
    [
        # the README's examples: a host memory cap, a cell dominated by one that ran out
        (
            OutOfMemory("cap", peak_bytes=round(6348.8 * MB), limit_bytes=6144 * MB),
            "host memory 6.2 GB > cap 6.0 GB",
        ),
        (
            OutOfMemory("dominated_by", dominated_by=3, batch_size=8, chunk_size=4),
            "dominated by batch 8, chunk 4",
        ),
        (OutOfMemory("cuda", peak_bytes=round(79_500.0 * MB)), "CUDA, peak 77.6 GB"),
        (OutOfMemory("host", requested_bytes=68719476736), "host: tried to allocate 64.0 GB"),
        (
            OutOfMemory("cuda", requested_bytes=2 * 2**30, injected=True),
            "CUDA: tried to allocate 2.0 GB (injected)",
        ),
        (
            OutOfMemory(
                "kernel_killed", peak_bytes=31 * 2**30, limit_bytes=32 * 2**30, message="x"
            ),
            "host memory 31.0 GB of 32.0 GB, killed by the kernel",
        ),
    ],
)
def test_out_of_memory_figures_name_what_ran_out(outcome: OutOfMemory, figure: str) -> None:
    # read from the typed outcome's fields, in a frame row as from Optuna's JSON
    assert out_of_memory_figure({"outcome_record": outcome}) == figure
    assert out_of_memory_figure({"outcome_record": to_json(outcome)}) == figure


def test_epoch_zero_is_logged_and_drawn_but_never_the_objective(
    sweep: Sweep, tables: StudyTables, optuna_trials: list, metrics: dict
) -> None:
    complete = [t for t in optuna_trials if t.state == TrialState.COMPLETE]
    assert complete
    objective = f"val_{sweep.file.objective.metric}"
    for trial in complete:
        logged = metrics[trial.number][objective]
        assert sorted(logged) == [0, 1, 2]  # step 0: the initial weights
        assert "train_loss" in metrics[trial.number]
        assert 0 not in metrics[trial.number]["train_loss"]  # nothing trained at epoch 0
        # Optuna (value, pruner's intermediate values, best epoch) sees epochs 1 and 2 only
        assert sorted(trial.intermediate_values) == [1, 2]
        assert trial.user_attrs["best_epoch"] in (1, 2)
        assert trial.value == max(logged[1], logged[2])
        assert trial.user_attrs["best_val_auc"] == max(logged[1], logged[2])
        # no per-metric best chosen on test itself: test is read at the selected epoch
        assert not [key for key in trial.user_attrs if key.startswith("best_test_")]
        assert "last_test_auc" in trial.user_attrs
        assert trial.user_attrs["initial_val_auc"] == logged[0]
        assert trial.user_attrs["epochs_done"] == 2
    # the plot data holds epoch 0 for every trial with curves
    curves = tables.curves([t.number for t in complete])
    assert set(curves.groupby("number")["epoch"].min()) == {0}
