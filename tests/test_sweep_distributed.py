"""Many workers on one study, and workers that die.

Fast: a trial whose worker stops beating is FAILED with the reason and queued again with the
same parameters, by exactly one of several processes sweeping at once; the study lock
serialises; a SQLite storage that stays locked says to use PostgreSQL; workers per GPU.

Slow (real services on 127.0.0.1, real trial processes): three `vtd-sweep worker` processes,
started together on a study that does not exist yet, share a 12-cell grid; one is SIGKILLed
mid-trial; its trial is retried and completes; every cell runs once; MLflow holds one
FINISHED run per cell plus the killed one, KILLED and linked to its retry. Once on PostgreSQL
with an MLflow server (backed by PostgreSQL too), once on the SQLite defaults, where no worker
log may mention "database is locked" and the killed worker's trial process must not outlive it.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from threading import Event
from typing import Any

import optuna
import psutil
import pytest
from _services import PostgresServer, mlflow_server, postgres_server, stop_group
from _sweepfiles import SMALL_GRID, demo_yaml, files_sweep_yaml, sweep_yaml
from _vtd_sweep import run_vtd_sweep
from mlflow import MlflowClient
from optuna.trial import TrialState

from vtd.cli import main
from vtd.sweep.execute.pool import worker_specs
from vtd.sweep.execute.session import prepare
from vtd.sweep.plan.config import Sweep, load_sweep
from vtd.sweep.store.heartbeat import TrialHeartbeat, recover_lost_trials
from vtd.sweep.store.queue import enqueue, plan_queue
from vtd.sweep.store.storage import (
    StorageBusyError,
    StorageSettings,
    open_storage,
    retry_when_locked,
    storage_lock,
)
from vtd.sweep.store.study import StudyError, claim_next, open_sweep_study

SMALL = files_sweep_yaml("beats", SMALL_GRID, heartbeat={"interval_s": 1, "grace_s": 2})


def _write_data(folder: Path) -> None:
    """SMALL's data (three participants, one of them test), for commands that check it."""
    from _data_factory import write_dataset

    write_dataset(
        folder / "data" / "objectattention",
        layout="objectattention",
        shows=["P01", "P02", "P03"],
        subset_of={"P03": "test"},
    )


def _queued_study(folder: Path, text: str = SMALL) -> Sweep:
    folder.mkdir(parents=True, exist_ok=True)
    _write_data(folder)
    path = folder / "sweep.yaml"
    path.write_text(text)
    sweep = load_sweep(path)
    sweep_study = open_sweep_study(sweep, create=True)
    enqueue(sweep_study, plan_queue(sweep, sweep_study.study.get_trials(deepcopy=False)))
    return sweep


def _recover_in_process(path: str, start: Any, results: multiprocessing.Queue) -> None:
    sweep_study = open_sweep_study(load_sweep(path), create=False)
    sweep_study.study.get_trials(deepcopy=False)  # connected: only the sweep is left to race
    start.wait(timeout=120)  # all three sweep from the same moment on
    results.put(recover_lost_trials(sweep_study))


def test_a_dead_workers_trial_is_failed_and_queued_again_once(tmp_path: Path) -> None:
    sweep = _queued_study(tmp_path)
    sweep_study = open_sweep_study(sweep, create=False)
    dead = claim_next(sweep_study)  # claimed, one heartbeat recorded, then nothing: dead
    alive = claim_next(sweep_study)
    assert dead is not None and alive is not None
    dead.trial.set_user_attr("mlflow_run_id", "run-of-the-dead-attempt")
    time.sleep(1.5)
    sweep_study.storage.record_heartbeat(alive.trial_id)  # this one's worker still beats
    assert recover_lost_trials(sweep_study) == []  # not stale yet: grace is 2 s
    # the live worker keeps beating while three processes sweep at once: exactly one of them
    # fails and re-queues the dead trial
    with TrialHeartbeat(sweep_study.storage, alive.trial_id, alive.trial.number, Event()):
        time.sleep(1.5)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        start = context.Barrier(3)
        sweepers = [
            context.Process(target=_recover_in_process, args=(str(sweep.path), start, results))
            for _ in range(3)
        ]
        for process in sweepers:
            process.start()
        handled = [results.get(timeout=120) for _ in sweepers]
        for process in sweepers:
            process.join()
    assert sorted(handled, key=len) == [[], [], [dead.trial.number]]

    trials = sweep_study.study.get_trials()
    lost = trials[dead.trial.number]
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs["worker_lost"] is True
    worker = f"{platform.node()}:{os.getpid()}"
    assert lost.user_attrs["reason"] == (
        f"failed: worker {worker} lost (no heartbeat for over 2 s); "
        "queued again with the same parameters"
    )
    assert trials[alive.trial.number].state == TrialState.RUNNING
    retries = [t for t in trials if t.number not in (dead.trial.number, alive.trial.number)]
    retry = [t for t in retries if t.user_attrs.get("retry_of") == [dead.trial.number]]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    assert retry[0].params == lost.params
    assert retry[0].user_attrs["config_hash"] == lost.user_attrs["config_hash"]
    assert retry[0].user_attrs["origin"] == "retry"
    assert retry[0].user_attrs["retry_of_run"] == "run-of-the-dead-attempt"
    for attempt_only in ("mlflow_run_id", "worker", "reason", "worker_lost"):
        assert attempt_only not in retry[0].user_attrs
    # the queue does not add the cell again: its retry is waiting
    assert plan_queue(sweep, trials) == []
    # the retry is claimed like any queued trial, with the same configuration
    claims = {}
    while (claim := claim_next(sweep_study)) is not None:
        claims[claim.trial.number] = claim
    assert claims[retry[0].number].origin == "retry"
    assert claims[retry[0].number].resolved.identity.config_hash == lost.user_attrs["config_hash"]


def test_retries_stop_after_max_retry(tmp_path: Path) -> None:
    text = SMALL.replace("grace_s: 2}", "grace_s: 2, max_retry: 1}")
    sweep = _queued_study(tmp_path, text.replace("[2, 4]", "[2]").replace("[2, 3]", "[2]"))
    sweep_study = open_sweep_study(sweep, create=False)
    first = claim_next(sweep_study)
    assert first is not None
    time.sleep(3.2)
    assert recover_lost_trials(sweep_study) == [first.trial.number]
    second = claim_next(sweep_study)  # the retry, and its worker dies too
    assert second is not None and second.origin == "retry"
    time.sleep(3.2)
    assert recover_lost_trials(sweep_study) == [second.trial.number]
    trials = sweep_study.study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert trials[1].user_attrs["reason"].endswith("retried too often: not queued again")
    # the next `vtd-sweep run` queues the cell again, as any failed one
    assert [item.retry_of for item in plan_queue(sweep, trials)] == [(0, 1)]


def test_status_and_run_recover_lost_trials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown, prepared = _queued_study(tmp_path / "a"), _queued_study(tmp_path / "b")
    shown_study = open_sweep_study(shown, create=False)
    prepared_study = open_sweep_study(prepared, create=False)
    dead_shown, dead_prepared = claim_next(shown_study), claim_next(prepared_study)
    assert dead_shown is not None and dead_prepared is not None
    time.sleep(3.2)
    assert main(["status", str(shown.path)]) == 0
    table = capsys.readouterr().out
    assert "1 FAIL" in table and "lost (no heartbeat" in table, table
    assert shown_study.study.get_trials()[dead_shown.trial.number].state == TrialState.FAIL

    notices: list[str] = []
    study_plan = prepare(prepared, events=lambda event: notices.append(event.message))
    number = dead_prepared.trial.number
    assert notices == [f"trial(s) {number}: their worker died; failed and queued again"]
    assert study_plan.queued == [] and study_plan.waiting == 4  # 3 queued before, 1 retry
    assert prepared_study.study.get_trials()[number].state == TrialState.FAIL


def test_a_worker_whose_trial_was_taken_over_stops_it(tmp_path: Path) -> None:
    sweep_study = open_sweep_study(_queued_study(tmp_path), create=False)
    claim = claim_next(sweep_study)
    assert claim is not None
    stop = Event()
    with TrialHeartbeat(sweep_study.storage, claim.trial_id, claim.trial.number, stop) as beat:
        assert not beat.halt.wait(1.2)  # beating, nothing to stop
        # another process found the trial stale (this worker's storage was out of reach)
        sweep_study.storage.set_trial_state_values(claim.trial_id, TrialState.FAIL)
        assert beat.halt.wait(3) and beat.lost
    # Ctrl-C reaches the running trial through its heartbeat too
    other = claim_next(sweep_study)
    assert other is not None
    with TrialHeartbeat(sweep_study.storage, other.trial_id, other.trial.number, stop) as beat:
        stop.set()
        assert beat.halt.wait(1) and not beat.lost


def test_a_trial_this_worker_ends_is_not_taken_for_lost(tmp_path: Path) -> None:
    """The worker stops the beats before it writes the end to Optuna: a beat after that
    write used to read COMPLETE, call the trial lost and warn (seen in bench_sweep)."""
    sweep_study = open_sweep_study(_queued_study(tmp_path), create=False)
    claim = claim_next(sweep_study)
    assert claim is not None
    with TrialHeartbeat(sweep_study.storage, claim.trial_id, claim.trial.number, Event()) as beat:
        assert not beat.halt.wait(1.2)  # beating
        beat.finish()
        sweep_study.storage.set_trial_state_values(claim.trial_id, TrialState.COMPLETE, [0.5])
        assert not beat.halt.wait(2.5) and not beat.lost  # a beat would have come by now


def test_the_study_lock_is_held_by_one_process_at_a_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    inside: list[str] = []
    overlaps: list[bool] = []

    def hold(name: str) -> None:
        with storage_lock(url, "vtd-sweep study s"):
            overlaps.append(bool(inside))
            inside.append(name)
            time.sleep(0.3)
            inside.remove(name)

    threads = [threading.Thread(target=hold, args=(str(index),)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [False, False, False]


def test_a_sqlite_storage_that_stays_locked_says_to_use_postgresql(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db"
    settings = StorageSettings(url=f"sqlite:///{path}", sqlite_timeout_s=0.5)
    storage = open_storage(settings)
    blocker = sqlite3.connect(path)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageBusyError, match=r"stayed locked for 0.5 s.*use PostgreSQL"):
            optuna.create_study(storage=storage, study_name="busy")
    finally:
        blocker.rollback()
        blocker.close()


def test_a_locked_mlflow_store_is_waited_for_then_explained(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    sqlite3.connect(path).execute("CREATE TABLE runs (id INTEGER)").connection.commit()
    attempts: list[float] = []

    def write() -> None:  # a writer that does not wait: each lock is an error at once
        attempts.append(time.monotonic())
        with sqlite3.connect(path, timeout=0) as connection:
            connection.execute("INSERT INTO runs VALUES (1)")

    blocker = sqlite3.connect(path, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.0, blocker.rollback).start()  # the other writer finishes after 1 s
    retry_when_locked(write, store="sqlite:///store.db", first_wait_s=0.2)
    assert len(attempts) >= 2 and attempts[-1] - attempts[0] >= 1.0
    blocker.execute("BEGIN EXCLUSIVE")  # and now it never does
    try:
        with pytest.raises(StorageBusyError, match=r"MLflow server backed by PostgreSQL"):
            retry_when_locked(write, store="sqlite:///store.db", attempts=3, first_wait_s=0.05)
    finally:
        blocker.rollback()
        blocker.close()


def test_an_unreachable_storage_is_one_line_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_data(tmp_path)  # checked before the storage is reached
    path = tmp_path / "sweep.yaml"
    path.write_text(SMALL)
    url = "postgresql+psycopg2://vtd:secret@127.0.0.1:1/optuna"  # nothing listens on port 1
    assert main(["worker", str(path), "--storage", url]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "vtd-sweep: cannot reach the Optuna storage postgresql+psycopg2://vtd:***@127.0.0.1:1/"
    )
    assert "secret" not in line and "Connection refused" in line


def test_an_unreachable_mlflow_server_is_one_line_and_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # refused at once, not retried
    _write_data(tmp_path)  # checked before the storage is reached
    path = tmp_path / "sweep.yaml"
    path.write_text(SMALL)
    assert main(["worker", str(path), "--tracking-uri", "http://127.0.0.1:1"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("vtd-sweep: MLflow: ") and "127.0.0.1" in line


def test_workers_per_gpu_and_threads_per_cpu_worker() -> None:
    pinned = worker_specs(None, ["0", "1"])
    assert [(spec.gpu, spec.torch_threads) for spec in pinned] == [("0", None), ("1", None)]
    assert [spec.gpu for spec in worker_specs(4, ["0", "1"])] == ["0", "1", "0", "1"]
    with pytest.raises(ValueError, match="at least one per GPU"):
        worker_specs(1, ["0", "1"])
    cpu = worker_specs(2, None)
    cores = len(os.sched_getaffinity(0))
    assert [spec.torch_threads for spec in cpu] == [max(1, cores // 2)] * 2
    assert worker_specs(None, None)[0].torch_threads is None


# --- three workers, one killed ------------------------------------------------------------
GRID = sweep_yaml(
    "shared",
    {"batch_size": [1, 2], "chunk_size": [2, 4], "lr": ["1.0e-4", "2.0e-4", "3.0e-4"]},
    heartbeat={"interval_s": 1, "grace_s": 6},
    demo=demo_yaml(videoattentiontarget={"clips_per_show": 2}),
)
CELLS = 12
WORKERS = 3


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("distributed-cache")


def _start_workers(path: Path, logs: Path, extra: list[str]) -> list[subprocess.Popen]:
    workers = []
    for index in range(WORKERS):
        with (logs / f"worker-{index}.log").open("w") as log:
            command = [sys.executable, "-m", "vtd.cli", "worker", str(path), "--threads", "1"]
            workers.append(
                subprocess.Popen(
                    command + extra, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
    return workers


def _session_processes(session: int) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def _kill_a_worker_mid_trial(
    sweep: Sweep, workers: list[subprocess.Popen], *, whole_group: bool
) -> tuple[int, int]:
    """Wait until a worker is training a trial, SIGKILL it; returns (pid, trial number)."""
    pids = {f"{platform.node()}:{worker.pid}": worker for worker in workers}
    deadline = time.monotonic() + 300
    study = None
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.poll() is None, f"worker {worker.pid} ended early"
        study = study or _study_when_queued(sweep)
        if study is None:
            time.sleep(0.2)
            continue
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = pids.get(trial.user_attrs.get("worker", ""))
            log = sweep.trials_dir / str(trial.number) / "trial.log"
            if worker is not None and log.is_file() and "training into" in log.read_text():
                if whole_group:
                    os.killpg(worker.pid, signal.SIGKILL)
                else:
                    os.kill(worker.pid, signal.SIGKILL)
                worker.wait(10)
                return worker.pid, trial.number
        time.sleep(0.1)
    raise AssertionError("no worker started a trial within 300 s")


def _study_when_queued(sweep: Sweep) -> optuna.Study | None:
    try:
        study = open_sweep_study(sweep, create=False).study
    except StudyError:  # not made yet: look again
        return None
    return study if len(study.get_trials(deepcopy=False)) >= CELLS else None


def _three_workers_one_killed(
    folder: Path, cache: Path, *, storage: str | None, tracking_uri: str | None, group: bool
) -> tuple[Sweep, int, int, list[str]]:
    folder.mkdir(parents=True)
    (folder / ".cache").symlink_to(cache, target_is_directory=True)
    path = folder / "sweep.yaml"
    path.write_text(GRID)
    extra = []
    if storage is not None and tracking_uri is not None:
        extra = ["--storage", storage, "--tracking-uri", tracking_uri]
    sweep = load_sweep(path, storage=storage, tracking_uri=tracking_uri)
    logs = folder / "logs"
    logs.mkdir()
    workers = _start_workers(path, logs, extra)
    try:
        killed_pid, killed_trial = _kill_a_worker_mid_trial(sweep, workers, whole_group=group)
        for worker in workers:
            if worker.pid != killed_pid:
                assert worker.wait(600) == 0, (logs / "worker-0.log").read_text()[-3000:]
    finally:
        for worker in workers:
            stop_group(worker)
    texts = [log.read_text() for log in sorted(logs.iterdir())]
    return sweep, killed_pid, killed_trial, texts


def _check_outcome(sweep: Sweep, killed_pid: int, killed_trial: int) -> None:
    study = open_sweep_study(sweep, create=False).study
    trials = study.get_trials()
    states = [trial.state for trial in trials]
    assert len(trials) == CELLS + 1, [(t.number, t.state, t.user_attrs) for t in trials]
    assert states.count(TrialState.COMPLETE) == CELLS and states.count(TrialState.FAIL) == 1
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    # every cell ran once to the end
    assert len({trial.user_attrs["config_hash"] for trial in complete}) == CELLS
    assert len({tuple(sorted(trial.params.items())) for trial in complete}) == CELLS
    lost = trials[killed_trial]
    assert lost.state == TrialState.FAIL and lost.user_attrs["worker_lost"] is True
    assert lost.user_attrs["worker"] == f"{platform.node()}:{killed_pid}"
    assert "queued again with the same parameters" in lost.user_attrs["reason"]
    (retry,) = [t for t in complete if killed_trial in t.user_attrs.get("retry_of", [])]
    assert retry.params == lost.params and retry.user_attrs["origin"] == "retry"
    assert retry.user_attrs["config_hash"] == lost.user_attrs["config_hash"]

    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    experiment = client.get_experiment_by_name(sweep.study_name)
    assert experiment is not None
    runs = [
        run
        for run in client.search_runs([experiment.experiment_id], max_results=1000)
        if "optuna_trial" in run.data.tags
    ]
    by_trial = {int(run.data.tags["optuna_trial"]): run for run in runs}
    assert len(runs) == len(by_trial) == CELLS + 1
    finished = [run for run in runs if run.info.status == "FINISHED"]
    assert len(finished) == CELLS
    assert len({run.data.tags["config_hash"] for run in finished}) == CELLS
    assert all("val_auc" in run.data.metrics for run in finished)
    killed_run, retry_run = by_trial[killed_trial], by_trial[retry.number]
    assert killed_run.info.status == "KILLED"
    assert killed_run.data.tags["state"] == "FAIL"
    assert "lost" in killed_run.data.tags["reason"]
    assert killed_run.data.tags["retried_by"] == retry_run.info.run_id
    assert retry_run.data.tags["retry_of"] == killed_run.info.run_id
    assert retry_run.info.status == "FINISHED"
    assert lost.user_attrs["mlflow_run_id"] == killed_run.info.run_id
    assert retry.user_attrs["mlflow_run_id"] == retry_run.info.run_id


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for the session; each test makes its own
    databases in it."""
    with postgres_server() as server:
        yield server


@pytest.mark.slow
def test_three_workers_on_postgresql_and_an_mlflow_server(
    tmp_path: Path, demo_cache: Path, postgres: PostgresServer
) -> None:
    storage = postgres.create_database("optuna_shared")
    tracking_store = postgres.create_database("mlflow_shared")
    with mlflow_server(tracking_store, tmp_path / "artifacts", tmp_path / "mlflow.log") as url:
        sweep, pid, number, logs = _three_workers_one_killed(
            tmp_path / "project", demo_cache, storage=storage, tracking_uri=url, group=True
        )
        assert sweep.storage_url.startswith("postgresql") and sweep.tracking_uri == url
        _check_outcome(sweep, pid, number)
    assert not any("Traceback" in text for text in logs), logs


@pytest.mark.slow
def test_three_workers_on_sqlite_without_lock_errors(tmp_path: Path, demo_cache: Path) -> None:
    project = tmp_path / "project"
    sweep, pid, number, logs = _three_workers_one_killed(
        project, demo_cache, storage=None, tracking_uri=None, group=False
    )
    assert sweep.storage_url == f"sqlite:///{project / 'studies' / 'optuna.db'}"
    _check_outcome(sweep, pid, number)
    assert not any("database is locked" in text for text in logs)
    trial_logs = [log.read_text() for log in sweep.trials_dir.glob("*/trial.log")]
    assert len(trial_logs) == CELLS + 1
    assert not any("database is locked" in text for text in trial_logs)
    # only the worker was killed: its trial process (and the fork server) ended with it
    deadline = time.monotonic() + 15
    while _session_processes(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_processes(pid) == []
    lost_log = (sweep.trials_dir / str(number) / "trial.log").read_text()
    assert f"the worker (process {pid}) is gone" in lost_log


@pytest.mark.slow
def test_run_gpus_starts_one_pinned_worker_per_gpu(tmp_path: Path, demo_cache: Path) -> None:
    # No GPU here: the trials train on the CPU; what is checked is each worker's pin, which
    # its trial processes inherit (they log it).
    project = tmp_path / "project"
    project.mkdir()
    (project / ".cache").symlink_to(demo_cache, target_is_directory=True)
    path = project / "sweep.yaml"
    path.write_text(GRID.replace("lr: [1.0e-4, 2.0e-4, 3.0e-4]", "lr: [1.0e-4, 2.0e-4]"))
    done = run_vtd_sweep("run", path, "--gpus", "0,1", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = load_sweep(path)
    trials = open_sweep_study(sweep, create=False).study.get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 8
    pins: dict[str, set[str]] = {}
    for trial in trials:
        log = (sweep.trials_dir / str(trial.number) / "trial.log").read_text()
        (pin,) = re.findall(r"CUDA_VISIBLE_DEVICES=(\S+)\)", log)
        pins.setdefault(trial.user_attrs["worker"], set()).add(pin)
    # two workers, each on its own GPU
    assert sorted(pin for worker_pins in pins.values() for pin in worker_pins) == ["0", "1"]
    assert all(len(worker_pins) == 1 for worker_pins in pins.values())
    client = MlflowClient(tracking_uri=sweep.tracking_uri)
    experiment = client.get_experiment_by_name(sweep.study_name)
    assert experiment is not None
    (parent,) = [
        run
        for run in client.search_runs([experiment.experiment_id])
        if run.data.tags.get("vtd.command") == "run"
    ]
    assert parent.data.tags["gpus"] == "0,1" and parent.data.tags["workers"] == "2"


def _claim_and_die(path: str, claimed: multiprocessing.Queue) -> None:
    claim = claim_next(open_sweep_study(load_sweep(path), create=False))
    assert claim is not None
    claimed.put(claim.trial.number)
    claimed.close()
    claimed.join_thread()  # delivered before the process vanishes
    os._exit(0)  # gone without a word, as a worker killed by SIGKILL or the OOM killer


def test_a_dead_worker_on_this_machine_is_recognised_at_once(tmp_path: Path) -> None:
    # a grace period of 10 minutes: only the dead process can make the trial lost now
    sweep = _queued_study(tmp_path, SMALL.replace("{interval_s: 1, grace_s: 2}", "{grace_s: 600}"))
    sweep_study = open_sweep_study(sweep, create=False)
    context = multiprocessing.get_context("spawn")
    claimed = context.Queue()
    process = context.Process(target=_claim_and_die, args=(str(sweep.path), claimed))
    process.start()
    dead_number = claimed.get(timeout=120)
    process.join(60)
    alive = claim_next(sweep_study)  # this process: alive, its trial stays
    elsewhere = claim_next(sweep_study)  # a worker on another machine: only its heartbeat tells
    assert alive is not None and elsewhere is not None
    elsewhere.trial.set_user_attr("worker", f"another-{platform.node()}:{process.pid}")
    started = time.monotonic()
    assert recover_lost_trials(sweep_study) == [dead_number]
    assert time.monotonic() - started < 30
    trials = sweep_study.study.get_trials()
    lost = trials[dead_number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["worker_lost"] is True
    assert lost.user_attrs["reason"] == (
        f"failed: worker {platform.node()}:{process.pid} lost (its process is gone); "
        "queued again with the same parameters"
    )
    assert trials[alive.trial.number].state == TrialState.RUNNING
    assert trials[elsewhere.trial.number].state == TrialState.RUNNING
    assert [t.user_attrs.get("retry_of") for t in trials if t.state == TrialState.WAITING].count(
        [dead_number]
    ) == 1
    assert recover_lost_trials(sweep_study) == []  # once only
