"""`vtd-sweep ui`: the MLflow UI for a study's tracking store.

A local SQLite store is served by `mlflow server`, run until it ends or this process gets
Ctrl-C, SIGTERM or SIGHUP; then its whole process group is stopped (`serve`). A study tracked
by a server is only named, with the address of its trials.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from rich.console import Console


def ui(file: Path, *, host: str = "127.0.0.1", port: int = 5000) -> int:
    from mlflow import MlflowClient

    from vtd.sweep.plan.config import load_sweep
    from vtd.sweep.store.storage import sqlite_busy_timeout_uri, sqlite_file
    from vtd.sweep.store.tracking import trials_view_url

    sweep = load_sweep(file)
    console = Console()
    server = not sweep.tracking_uri.startswith("sqlite:")
    address = sweep.tracking_uri if server else f"http://{host}:{port}"
    experiment = None
    store = sqlite_file(sweep.tracking_uri)
    if server or (store is not None and store.is_file()):
        experiment = MlflowClient(sweep.tracking_uri).get_experiment_by_name(sweep.study_name)
    trials = (
        f"; its trials: {trials_view_url(address, experiment.experiment_id)}"
        if experiment is not None
        else ""
    )
    if server:
        console.print(
            f"study {sweep.study_name} is tracked by the server at {address}{trials}",
            soft_wrap=True,
        )
        return 0
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(
            f"[bold yellow]warning[/]: the MLflow UI has no login; on {host} anyone who "
            "can reach this machine reads and changes the study's runs. Prefer 127.0.0.1 and an "
            f"SSH tunnel (ssh -L {port}:127.0.0.1:{port} this-host), or a reverse "
            "proxy with authentication."
        )
    console.print(
        f"MLflow UI for study {sweep.study_name} at [bold]{address}[/] "
        f"(store {sweep.tracking_uri}){trials}; Ctrl-C to stop",
        soft_wrap=True,
    )
    command = mlflow_server_command(sqlite_busy_timeout_uri(sweep.tracking_uri, 60), host, port)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return serve(command, env)


def mlflow_server_command(backend_uri: str, host: str, port: int, *options: str) -> list[str]:
    """`mlflow server` of this interpreter on `backend_uri`, one worker; `options` (such as
    `--artifacts-destination DIR`) follow the store."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        *options,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


class _Signalled(Exception):  # noqa: N818 - a signal, not an error
    pass


def _raise_signalled(signum: int, _frame: FrameType | None) -> None:
    raise _Signalled(signum)


def serve(command: list[str], env: dict[str, str], grace_s: float = 10.0) -> int:
    """Run a server until it ends or this process gets Ctrl-C, SIGTERM or SIGHUP; then stop
    it and every process it started (its own session, so the whole group), never leaving it
    listening. The server's exit code, or 0 when we stopped it."""
    ending = (signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.signal(number, _raise_signalled) for number in ending}
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return server.wait()
    except (KeyboardInterrupt, _Signalled):
        return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if server.poll() is None:
            # SIGTERM first (uvicorn / gunicorn shut down cleanly), SIGKILL if it lingers
            for stop_signal in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, stop_signal)
                try:
                    server.wait(grace_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        with contextlib.suppress(ProcessLookupError):  # its workers, if any outlived it
            os.killpg(server.pid, signal.SIGKILL)
