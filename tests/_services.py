"""Real services for the slow tests, each started and stopped here, on 127.0.0.1 only.

- `postgres_server()`: a throwaway PostgreSQL cluster in a temporary folder (Debian's
  `postgresql` package: `initdb` and `pg_ctl` under /usr/lib/postgresql/*/bin), on a free
  port of 127.0.0.1 with a random password; run as the `postgres` user when the tests run as
  root (the server refuses root). Stopped and deleted at the end.
- `mlflow_server(backend_uri, artifacts)`: `mlflow server` on a free port of 127.0.0.1,
  waited for until `/health` answers; its process group is ended at the end.
- `chromium(...)`: headless Chromium (Debian's `chromium` package) on a page: its DOM after
  the page has rendered, and a screenshot.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vtd.sweep.commands.ui import mlflow_server_command

LOCALHOST = "127.0.0.1"
CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = "apt-get install -y postgresql chromium (what .ci/run does)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


def wait_for_http(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server of {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")
        time.sleep(0.25)


def stop_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the process group of `process` (started with a session of its own), then
    SIGKILL if it has not ended."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(grace_s)


# --- PostgreSQL ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str
    password: str

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database of this server (Optuna and MLflow take it)."""
        return (
            f"postgresql+psycopg2://{self.user}:{self.password}@{LOCALHOST}:{self.port}/{database}"
        )

    def create_database(self, name: str) -> str:
        import psycopg2

        connection = psycopg2.connect(
            host=LOCALHOST,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname="postgres",
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


def _postgres_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _run_as(user: pwd.struct_passwd | None) -> list[str]:
    return [] if user is None else ["runuser", "-u", user.pw_name, "--"]


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip(f"no PostgreSQL server binaries (initdb, pg_ctl): {INSTALL_HINT}")
    owner = None
    if os.geteuid() == 0:  # the server refuses to run as root: run it as `postgres`
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and `runuser` (util-linux) is missing")
    folder = Path(tempfile.mkdtemp(prefix="vtd-postgres-"))
    data, log = folder / "data", folder / "server.log"
    password = secrets.token_hex(16)
    (folder / "password").write_text(password)
    if owner is not None:
        for path in (folder, folder / "password"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    as_owner = _run_as(owner)
    port = free_port()
    started = False
    try:
        subprocess.run(
            [
                *as_owner,
                str(bindir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                "postgres",
                f"--pwfile={folder / 'password'}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        # Unix socket in the temporary folder, TCP on 127.0.0.1 only; durability off (throwaway).
        options = f"-k {folder} -h {LOCALHOST} -p {port} -c fsync=off -c synchronous_commit=off"
        subprocess.run(
            [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60"]
            + ["-o", options, "start"],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        started = True
        yield PostgresServer(port=port, user="postgres", password=password)
    except subprocess.CalledProcessError as error:
        details = (error.stderr or "") + (log.read_text() if log.is_file() else "")
        raise RuntimeError(f"PostgreSQL did not start: {details[-2000:]}") from error
    finally:
        if started:
            subprocess.run(
                [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=120,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)


# --- MLflow server -------------------------------------------------------------------------
@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with this backend store; yields its URL."""
    port = free_port()
    artifacts.mkdir(parents=True, exist_ok=True)
    command = mlflow_server_command(
        backend_uri, LOCALHOST, port, "--artifacts-destination", str(artifacts)
    )
    # One worker and no job runner: /health answers in about 8 s instead of 18-29 s.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("w") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://{LOCALHOST}:{port}"
    try:
        try:
            wait_for_http(f"{url}/health", timeout_s=180, process=process)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{error}; its log:\n{log.read_text()[-3000:]}") from None
        yield url
    finally:
        stop_group(process)


# --- Chromium ------------------------------------------------------------------------------
def chromium_command(profile: Path) -> list[str]:
    if not CHROMIUM.is_file():
        pytest.skip(f"no {CHROMIUM}: {INSTALL_HINT}")
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
