"""The MLflow UI, in headless Chromium, shows a study's trials with their AUC.

A real `mlflow server` (SQLite backend, artifacts in a temporary folder, 127.0.0.1) is the
sweep file's `tracking_uri`; `vtd-sweep run` trains a small grid against it; `vtd-sweep ui`
prints the link to the study's `trials` view; Chromium opens it, and the rendered page must
list every trial's run with the AUC MLflow holds for it. The screenshot is kept under
test-artifacts/ (git-ignored) for a person to look at.

`vtd-sweep ui` on a SQLite store starts its own `mlflow server`; SIGTERM and SIGHUP (a
service manager, a closed terminal) stop it and every process it started: nothing listens.
"""

from __future__ import annotations

import html
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _services import chromium_command, mlflow_server
from _sweepfiles import demo_yaml, sweep_yaml
from _vtd_sweep import run_vtd_sweep
from mlflow import MlflowClient


def ui_sweep_yaml(tracking_uri: str) -> str:
    space = {"lr": ["1.0e-4", "3.0e-4", "1.0e-3"]}
    return sweep_yaml("ui-study", space, tracking_uri=tracking_uri, demo=demo_yaml(2))


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _chromium(profile: Path, url: str, *output: str) -> subprocess.CompletedProcess[str]:
    # The UI is a React app: a virtual-time budget lets it fetch the runs and render them.
    command = [
        *chromium_command(profile),
        "--window-size=1800,900",
        "--virtual-time-budget=30000",
        *output,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def _shown(value: float, page: str) -> bool:
    """Whether the page shows `value` as MLflow's table does (rounded, up to 4 digits)."""
    numbers = {float(text) for text in re.findall(r">\s*(\d\.\d+)\s*<", page)}
    return any(abs(number - value) < 5e-4 for number in numbers)


@pytest.mark.slow
def test_the_trials_view_lists_each_trial_with_its_auc(tmp_path: Path) -> None:
    with mlflow_server(
        f"sqlite:///{tmp_path / 'mlflow-server.db'}",
        tmp_path / "artifacts",
        tmp_path / "mlflow-server.log",
    ) as server:
        project = tmp_path / "project"
        project.mkdir()
        path = project / "sweep.yaml"
        path.write_text(ui_sweep_yaml(server))
        done = run_vtd_sweep("run", path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]

        client = MlflowClient(tracking_uri=server)
        experiment = client.get_experiment_by_name("ui-study")
        assert experiment is not None
        runs = [
            run
            for run in client.search_runs([experiment.experiment_id])
            if "optuna_trial" in run.data.tags
        ]
        assert len(runs) == 3 and all(run.info.status == "FINISHED" for run in runs)

        shown = run_vtd_sweep("ui", path, timeout=120)
        assert shown.returncode == 0, shown.stderr
        link = f"{server}/#/experiments/{experiment.experiment_id}/runs?viewStateShareKey=trials"
        assert link in shown.stdout.replace("\n", "")

        profile = tmp_path / "chromium-profile"
        page = html.unescape(_chromium(profile, link, "--dump-dom").stdout)
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / "mlflow-ui-trials.png"
        screenshot.unlink(missing_ok=True)
        _chromium(profile, link, f"--screenshot={screenshot}")

    assert "val_auc" in page
    for run in runs:
        assert run.info.run_name in page, run.info.run_name
        assert _shown(run.data.metrics["val_auc"], page), (run.info.run_name, run.data.metrics)
    assert "3 matching runs" in re.sub(r"<[^>]+>", "", page)
    assert screenshot.is_file() and screenshot.stat().st_size > 20_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow  # an mlflow server start: about 50 s under load here, 11 s of CPU
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_ui_stops_its_server_on_sigterm_and_sighup(tmp_path: Path, stop_signal: int) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "study: ui-stop\nsampler: grid\n"
        "data: {sources: [data/objectattention], validation: {groups: 1}}\n"
        "search_space: {lr: [1.0e-4]}\n"
    )
    port = _free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as output:
        ui = subprocess.Popen(
            [sys.executable, "-m", "vtd.cli", "ui", str(path), "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that the test can find what is left of it afterwards
        )
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):
            assert ui.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the MLflow server never listened"
            time.sleep(0.3)
        started = psutil.Process(ui.pid).children(recursive=True)
        assert started  # the server and its workers
        ui.send_signal(stop_signal)
        assert ui.wait(60) == 0, log.read_text()
        gone, alive = psutil.wait_procs(started, timeout=15)
        assert alive == [], [process.cmdline() for process in alive]
        assert not _listening(port)
    finally:
        if ui.poll() is None:
            ui.kill()
            ui.wait()
