"""The typed trial record: outcomes to and from Optuna, how they read, how workers decide
them, the kernel OOM killer's evidence, out-of-memory results that hold only on the same
hardware, and copies of a running configuration that wait for their original."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
from _sweepfiles import sweep_yaml
from optuna.trial import TrialState, create_trial

from tests.test_sweep_e2e import TINY_DEMO, make_sweep, mlflow_runs
from vtd.sweep.execute.oom_evidence import EvidenceSources, OomWatch, oom_kill_count
from vtd.sweep.execute.runner import ProcessOutcome
from vtd.sweep.plan.config import load_sweep
from vtd.sweep.plan.faults import FaultConfig
from vtd.sweep.plan.sections import ObjectiveConfig
from vtd.sweep.reporting.results import trials_frame
from vtd.sweep.store import record
from vtd.sweep.store.outcome import TrialFacts, decide_outcome
from vtd.sweep.store.queue import out_of_memory_to_retry, wait_for_original
from vtd.sweep.store.study import open_sweep_study
from vtd.sweep.store.words import describe, oom_figure, short_words

GB = 2**30
MB = 2**20
A100 = record.Device("NVIDIA A100-SXM4-80GB", 80 * GB, 512 * GB, 6 * GB)

EVERY_OUTCOME = [
    record.Complete(3),
    record.StoppedByPruner(2, "median pruner", 2),
    record.OutOfMemory("cuda", A100, 2 * GB, 79 * GB, 80 * GB, batch_size=16, chunk_size=4),
    record.OutOfMemory("kernel_killed", A100, peak_bytes=31 * GB, limit_bytes=32 * GB, message="m"),
    record.OutOfMemory("dominated_by", dominated_by=4, batch_size=8, chunk_size=4, injected=True),
    record.OutOfMemory("probed", A100, requested_bytes=GB),
    record.DuplicateOf(2, "PRUNED", "out-of-memory (CUDA) at batch 8, chunk 4"),
    record.Failed("ValueError", "bad\nsecond line", log_tail="tail"),
    record.Failed(signal="SIGKILL", exit_code=-9, peak_bytes=GB, injected=True),
    record.Interrupted(),
    record.Lost("host:12"),
]


@pytest.mark.parametrize("outcome", EVERY_OUTCOME, ids=lambda outcome: outcome.type)
def test_every_outcome_goes_through_optuna_unchanged(outcome: record.Outcome) -> None:
    attrs = record.outcome_attrs(outcome, describe(outcome))
    stored = optuna.create_study()  # user attributes are stored as JSON
    stored.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs))
    assert record.read_outcome(stored.trials[0].user_attrs) == outcome


def test_an_unknown_outcome_is_an_error_naming_its_type() -> None:
    with pytest.raises(ValueError, match="'exploded'"):
        record.from_json('{"type": "exploded"}')


def test_injected_outcomes_say_so_in_reason_figure_and_short_words() -> None:
    for outcome in EVERY_OUTCOME:
        injected = getattr(outcome, "injected", False)
        assert ("(injected)" in describe(outcome)) == injected, outcome
        assert ("(injected)" in short_words(outcome, 30)) == injected, outcome
    cuda = record.OutOfMemory(
        "cuda", requested_bytes=2 * GB, injected=True, batch_size=1, chunk_size=3
    )
    assert oom_figure(cuda) == "CUDA: tried to allocate 2.0 GB (injected)"
    assert record.outcome_attrs(cuda, "")["injected"] is True


def test_states_and_flat_columns_come_from_the_outcome() -> None:
    assert [record.state_of(outcome) for outcome in EVERY_OUTCOME] == [
        "COMPLETE",
        "PRUNED",
        "PRUNED",
        "PRUNED",
        "PRUNED",
        "PRUNED",
        "PRUNED",
        "FAIL",
        "FAIL",
        "FAIL",
        "FAIL",
    ]
    dominated = record.outcome_attrs(EVERY_OUTCOME[4], "")
    assert dominated["dominated_by"] == 4 and dominated["oom_dominated"]
    assert not dominated["out_of_memory"]
    killed = record.outcome_attrs(EVERY_OUTCOME[8], "")
    assert (killed["signal"], killed["exit_code"]) == ("SIGKILL", -9)


# --- deciding outcomes ------------------------------------------------------------------------
def facts(**changes: object) -> TrialFacts:
    base = {
        "batch_size": 2,
        "chunk_size": 3,
        "memory_cap_mb": None,
        "pruner": "median",
        "objective": ObjectiveConfig(),
        "faults": (),
        "log_tail": "last lines",
    }
    base.update(changes)
    return TrialFacts(**base)  # type: ignore[arg-type]


def epoch(number: int, auc: float) -> dict:
    return {"epoch": number, "validation": {"auc": auc, "dist": 0.2, "ap": 0.5}}


def test_a_sigkill_with_evidence_of_the_oom_killer_is_host_out_of_memory() -> None:
    reported = ProcessOutcome(
        status="died",
        exit_code=-9,
        peak_rss_mb=31_000.0,
        last_rss_mb=30_900.0,
        oom_kill_evidence="the cgroup's oom_kill count rose from 0 to 1",
        memory_limit_mb=32_000.0,
        device={"host_total_bytes": 32_000 * MB},
    )
    outcome, value = decide_outcome(reported, facts())
    assert value is None and record.state_of(outcome) == "PRUNED"
    assert isinstance(outcome, record.OutOfMemory) and outcome.kind == "kernel_killed"
    assert outcome.peak_bytes == 30_900 * MB and outcome.limit_bytes == 32_000 * MB
    assert outcome.device == record.Device(host_total_bytes=32_000 * MB)
    assert "oom_kill count rose" in describe(outcome)


def test_a_sigkill_without_evidence_fails_naming_the_signal_and_the_peak() -> None:
    reported = ProcessOutcome(status="died", exit_code=-9, peak_rss_mb=2048.0)
    outcome, _ = decide_outcome(reported, facts())
    assert outcome == record.Failed(
        signal="SIGKILL", exit_code=-9, log_tail="last lines", peak_bytes=2 * GB
    )
    assert describe(outcome).startswith("failed: trial process killed by SIGKILL")
    assert "last peak 2.0 GB" in describe(outcome)


def test_an_injected_fault_marks_only_the_outcome_it_causes() -> None:
    crash = (FaultConfig(kind="sigkill", epoch=2),)
    # killed before epoch 2 was reported: the injected kill
    killed = ProcessOutcome(status="died", exit_code=-9, records=[epoch(1, 0.6)])
    outcome, _ = decide_outcome(killed, facts(faults=crash))
    assert isinstance(outcome, record.Failed) and outcome.injected
    # an error of its own at epoch 1, before the fault: not injected
    error = {"type": "ValueError", "message": "nan", "kind": "error"}
    failed = ProcessOutcome(status="error", error=error)
    outcome, _ = decide_outcome(failed, facts(faults=crash))
    assert isinstance(outcome, record.Failed) and not outcome.injected
    oom = {"kind": "cuda_oom", "type": "OutOfMemoryError", "message": "CUDA out of memory."}
    reported = ProcessOutcome(status="cuda_oom", error={**oom, "requested_bytes": GB})
    outcome, _ = decide_outcome(reported, facts(faults=(FaultConfig(kind="cuda_oom", epoch=0),)))
    assert outcome == record.OutOfMemory(
        "cuda",
        record.Device(),
        requested_bytes=GB,
        message="CUDA out of memory.",
        injected=True,
        batch_size=2,
        chunk_size=3,
    )


def test_complete_and_pruned_trials_carry_the_objective() -> None:
    records = [epoch(1, 0.6), epoch(2, 0.8), epoch(3, 0.7)]
    outcome, value = decide_outcome(ProcessOutcome(status="completed", records=records), facts())
    assert outcome == record.Complete(2) and value == 0.8
    stopped = ProcessOutcome(status="completed", records=records[:2], stopped_by_worker=True)
    outcome, value = decide_outcome(stopped, facts())
    assert outcome == record.StoppedByPruner(2, "median pruner", 2) and value == 0.8


# --- the kernel's OOM killer ------------------------------------------------------------------
def test_the_cgroup_oom_kill_counter_rising_is_evidence(tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
    watch = OomWatch(EvidenceSources(memory_events=events))
    assert watch.evidence(123, last_rss_bytes=MB) is None
    events.write_text("low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert watch.evidence(123, last_rss_bytes=MB) == (
        "the cgroup's oom_kill count rose from 1 to 2"
    )
    assert oom_kill_count(tmp_path / "missing") is None


def test_a_kernel_log_naming_the_process_is_evidence(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text(
        "6,1234,5678,-;Out of memory: Killed process 4242 (python) total-vm:33554432kB, "
        "anon-rss:31457280kB\n"
    )
    watch = OomWatch(EvidenceSources(kernel_log=log))
    assert watch.evidence(4242, 0) == "the kernel log names process 4242"
    assert watch.evidence(424, 0) is None


def test_a_last_sample_within_five_percent_of_the_limit_is_evidence() -> None:
    watch = OomWatch(EvidenceSources(memory_limit_bytes=32 * GB))
    assert watch.evidence(1, 31 * GB) is not None  # 96.9 %
    assert watch.evidence(1, 30 * GB) is None  # 93.8 %


# --- out-of-memory holds on the same hardware only --------------------------------------------
def study_of(*outcomes: record.OutOfMemory) -> list:
    """Trials 0, 1, ... PRUNED with these outcomes, as Optuna stores them."""
    study = optuna.create_study()
    for outcome in outcomes:
        study.add_trial(
            create_trial(
                state=TrialState.PRUNED,
                user_attrs=record.outcome_attrs(outcome, describe(outcome)),
            )
        )
    return study.get_trials(deepcopy=False)


def test_out_of_memory_is_final_only_on_the_same_hardware() -> None:
    gpu = ("NVIDIA A100-SXM4-80GB", 80 * GB)
    here = record.Device(*gpu, 64 * GB, 1500 * MB)
    host = record.OutOfMemory("host", here, batch_size=1, chunk_size=3)
    dominated = record.OutOfMemory("dominated_by", here, dominated_by=0, batch_size=1, chunk_size=3)
    cuda = record.OutOfMemory("cuda", here, batch_size=2, chunk_size=3)
    trials = study_of(host, dominated, cuda)

    def again(device: record.Device, retry: bool = False) -> list[int]:
        return [trial.number for trial in out_of_memory_to_retry(trials, device, retry=retry)]

    assert again(here) == []
    assert again(record.Device(*gpu, 64 * GB, 1000 * MB)) == []  # a smaller cap: still final
    assert again(record.Device(*gpu, 64 * GB, 3000 * MB)) == [0, 1]  # larger cap: both again
    assert again(record.Device(*gpu, 128 * GB, 1500 * MB)) == [0, 1]  # more host memory
    h100 = record.Device("NVIDIA H100 80GB HBM3", 80 * GB, 64 * GB, 1500 * MB)
    assert again(h100) == [2]  # another GPU: only the CUDA out-of-memory
    assert again(here, retry=True) == [0, 1, 2]


# --- a copy of a running configuration --------------------------------------------------------
@pytest.mark.parametrize("ends", [TrialState.FAIL, TrialState.COMPLETE])
def test_a_copy_waits_for_its_running_original(ends: TrialState) -> None:
    study = optuna.create_study()
    original = study.ask()
    original.set_user_attr("config_hash", "same")
    copy = study.ask()
    copy.set_user_attr("config_hash", "same")
    found: list = []
    waiter = threading.Thread(
        target=lambda: found.append(
            wait_for_original(study, copy.number, "same", threading.Event(), 0.05)
        )
    )
    waiter.start()
    time.sleep(0.3)
    assert not found  # still waiting while the original runs
    study.tell(original, 0.7 if ends == TrialState.COMPLETE else None, state=ends)
    waiter.join(5)
    if ends == TrialState.FAIL:
        assert found == [None]  # the copy runs the configuration itself
    else:
        assert found[0].number == original.number  # the copy takes its outcome


def test_a_halted_copy_stops_waiting() -> None:
    study = optuna.create_study()
    original = study.ask()
    original.set_user_attr("config_hash", "same")
    copy = study.ask()
    copy.set_user_attr("config_hash", "same")
    halt = threading.Event()
    halt.set()
    assert wait_for_original(study, copy.number, "same", halt, 10.0) is None


# --- through the CLI ----------------------------------------------------------------------
def killed_yaml(limit_mb: int, batches: list[int]) -> str:
    """A sweep whose batch-1 trial is SIGKILLed in epoch 1, its memory limit `limit_mb`."""
    return sweep_yaml(
        "killed",
        {"batch_size": batches},
        oom_evidence={"memory_limit_mb": limit_mb},
        faults=[{"kind": "sigkill", "epoch": 1, "when": {"batch_size": 1}}],
        demo=TINY_DEMO,
    )


def run_cli(path: Path, *extra: str) -> int:
    from vtd.cli import main

    return main(["run", str(path), *extra])


def test_a_sigkill_with_evidence_of_an_oom_kill_is_pruned_and_dominates(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    # A memory limit of 1 MB: the trial's last resident-memory sample is over it (evidence).
    text = killed_yaml(1, [1, 2])
    path = make_sweep(tmp_path, text, shared_cache, mlflow_template)
    assert run_cli(path) == 0
    sweep = load_sweep(path)
    trials = trials_frame(sweep).set_index("batch_size")
    killed, dominated = trials.loc[1], trials.loc[2]
    assert killed["state"] == "PRUNED" and dominated["state"] == "PRUNED"
    outcome = killed["outcome_record"]
    assert isinstance(outcome, record.OutOfMemory) and outcome.kind == "kernel_killed"
    assert outcome.limit_bytes == MB and outcome.peak_bytes > 100 * MB
    assert outcome.device is not None and outcome.device.host_total_bytes > 0
    assert "within 5% of the limit" in outcome.message
    assert killed["reason"].startswith("pruned: out-of-memory (host, killed by the kernel)")
    assert "(injected)" in killed["reason"]
    assert dominated["outcome_record"].dominated_by == killed["number"] and not dominated["ran"]
    run = mlflow_runs(sweep)[int(killed["number"])]
    assert run.info.status == "KILLED"
    assert (run.data.tags["outcome"], run.data.tags["oom_kind"]) == (
        "out_of_memory",
        "kernel_killed",
    )


def test_a_sigkill_without_evidence_fails_naming_signal_and_peak(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    text = killed_yaml(10**7, [1])  # a 10 TB limit: no evidence
    path = make_sweep(tmp_path, text, shared_cache, mlflow_template)
    assert run_cli(path) == 0
    (row,) = trials_frame(load_sweep(path)).to_dict("records")
    assert row["state"] == "FAIL" and row["signal"] == "SIGKILL"
    outcome = row["outcome_record"]
    assert isinstance(outcome, record.Failed) and outcome.injected and outcome.peak_bytes > 100 * MB
    assert row["reason"].startswith("failed: trial process killed by SIGKILL (injected)")
    assert f"last peak {outcome.peak_bytes / MB:.0f} MB" in row["reason"]


def capped_yaml(cap_mb: int, faults: tuple[dict, ...] = ()) -> str:
    """A sweep of batch sizes 1 and 2 under a host-memory cap of `cap_mb`."""
    return sweep_yaml(
        "capped", {"batch_size": [1, 2]}, memory_cap_mb=cap_mb, faults=faults, demo=TINY_DEMO
    )


def test_a_larger_cap_runs_pruned_and_dominated_cells_again(
    tmp_path: Path,
    shared_cache: Path,
    mlflow_template: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fault = {"kind": "host_oom", "epoch": 0, "when": {"batch_size": 1}}
    path = make_sweep(tmp_path, capped_yaml(1500, faults=(fault,)), shared_cache, mlflow_template)
    assert run_cli(path) == 0
    first = trials_frame(load_sweep(path)).set_index("batch_size")
    assert first["state"].tolist() == ["PRUNED", "PRUNED"]
    assert first.loc[2, "outcome_record"].kind == "dominated_by"
    # the same machine and cap: final; asked for, both would run again
    assert run_cli(path, "--dry-run") == 0
    assert "0 to queue" in capsys.readouterr().out
    assert run_cli(path, "--dry-run", "--retry", "out-of-memory") == 0
    assert "2 to queue" in capsys.readouterr().out
    # a larger cap (and the fault gone): both cells run again, and the run says so
    path.write_text(capped_yaml(3000))
    assert run_cli(path) == 0
    assert "trial(s) 0, 1: out of memory before" in capsys.readouterr().out
    study = open_sweep_study(load_sweep(path), create=False).study
    again = sorted(study.trials[2:], key=lambda trial: trial.params["batch_size"])
    assert [trial.state for trial in again] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert [trial.user_attrs["retry_of"] for trial in again] == [[0], [1]]
    assert len(study.trials) == 4


SAMPLED_TWICE = sweep_yaml(
    "twice",
    {"model.lstm_dropout": [0.0]},
    sampler={"name": "random", "seed": 1},
    n_trials=2,
    training={"epochs": 2},
    faults=[{"kind": "exit", "epoch": 2, "exit_code": 5}],
    demo=TINY_DEMO,
)


def test_a_sampled_copy_of_a_configuration_whose_original_fails_runs_it(
    tmp_path: Path, shared_cache: Path, mlflow_template: Path
) -> None:
    # Two workers sample the one configuration: the second is a copy of the first, which
    # runs two epochs and then fails. The copy is not pruned as "not finished yet" (the
    # configuration lost for good): it waits, finds the original failed, and runs it itself.
    path = make_sweep(tmp_path, SAMPLED_TWICE, shared_cache, mlflow_template)
    assert run_cli(path, "--workers", "2") in (0, 1)
    sweep = load_sweep(path)
    study = open_sweep_study(sweep, create=False).study
    first, second = study.trials[:2]
    assert first.user_attrs["config_hash"] == second.user_attrs["config_hash"]
    for trial in (first, second):
        assert trial.state == TrialState.FAIL  # the injected exit, in each: both ran
        assert "duplicate_of" not in trial.user_attrs
        outcome = record.read_outcome(trial.user_attrs)
        assert isinstance(outcome, record.Failed) and outcome.exit_code == 5 and outcome.injected
        assert (sweep.trials_dir / str(trial.number) / "epochs.jsonl").is_file()
