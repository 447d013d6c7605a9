"""The Optuna storage, set up in one place: engine settings, locks, SQLite locking, heartbeats.

SQLite: Optuna claims a queued trial by reading its state and writing RUNNING; the row lock
it asks for (`SELECT ... FOR UPDATE`) does not exist in SQLite, and Python's sqlite3 driver
starts no transaction for a SELECT, so two workers can claim the same trial (measured: 170
claims of 150 queued trials by 4 processes). Every transaction here begins with
`BEGIN IMMEDIATE`, which takes SQLite's write lock first, so claims are serialised; a busy
database is waited for (`timeout`) rather than failing with "database is locked", and a
database still locked after that raises `StorageBusyError`, which says to use PostgreSQL.
PostgreSQL / MySQL: Optuna's row lock works as it is.

Creating a new database is serialised too (`schema_lock`): a file lock beside a SQLite file,
an advisory lock on a server, so that workers started together never race to create tables.
`storage_lock(url, name)` is the same lock under any name (`vtd-sweep run` holds one per
study while it creates and queues it).

Heartbeats: with `heartbeat_interval_s` set, a RUNNING trial whose heartbeat is older than the
grace period is FAILED by whoever sweeps stale trials (`optuna.storages.fail_stale_trials`)
and `RequeueStaleTrial` queues it again with the same parameters.

MLflow's SQLite store gets a long busy timeout (`sqlite_busy_timeout_uri`) and its calls are
retried with backoff (`retry_when_locked`).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import logging
import random
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import FrozenTrial
from sqlalchemy import event
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

T = TypeVar("T")
LOCKED_MARK = "database is locked"
SCHEMA_LOCK = "vtd-sweep schema"
# Attributes of one attempt at a trial: a retry gets its own.
ATTEMPT_ATTRS = ("mlflow_run_id", "trial_dir", "worker", "reason", "worker_lost")
SEVERAL_MACHINES = "README, 'Running on several machines'"


class StorageError(RuntimeError):
    """A store that cannot be used: unreachable, no driver, a bad URL. One line."""


class StorageBusyError(StorageError):
    """A store that stayed locked: too many workers for SQLite. The message says what to use."""


@contextlib.contextmanager
def _explained(url: str) -> Iterator[None]:
    """Errors of reaching a database as one line naming it (password hidden)."""
    where = f"the Optuna storage {hide_password(url)}"
    try:
        yield
    except ModuleNotFoundError as error:
        raise StorageError(
            f"{where} needs the Python driver {error.name!r}; for PostgreSQL: "
            "pip install -e '.[postgres]'"
        ) from None
    except sqlalchemy.exc.ArgumentError as error:
        raise StorageError(f"{where} is not a database URL SQLAlchemy knows: {error}") from None
    except sqlalchemy.exc.OperationalError as error:
        detail = str(error.orig if error.orig is not None else error).strip()
        first = detail.splitlines()[0] if detail else type(error).__name__
        raise StorageError(f"cannot reach {where}: {first}") from None


@dataclass(frozen=True)
class StorageSettings:
    """How to reach and use the Optuna storage."""

    url: str
    sqlite_timeout_s: float = 120.0
    # Heartbeats: None leaves them off; a killed worker's trial then stays RUNNING.
    heartbeat_interval_s: int | None = None
    grace_period_s: int | None = None
    max_retry: int | None = 3

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite:")

    def sqlite_path(self) -> Path | None:
        return sqlite_file(self.url)

    def exists(self) -> bool:
        """False only when a SQLite database file is missing (servers are assumed up)."""
        path = self.sqlite_path()
        return path is None or path.is_file()


def sqlite_file(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL (query removed); None for other URLs."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def hide_password(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created), held for the `with` block; one machine only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _server_lock(url: str, name: str) -> Iterator[None]:
    # A session-level advisory lock on a connection of its own, released when it closes.
    with _explained(url):
        engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    dialect = engine.dialect.name
    try:
        with _explained(url):
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        with connection:
            if dialect == "postgresql":
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _lock_key(name)}
                )
            elif dialect in ("mysql", "mariadb"):
                key = hashlib.sha256(name.encode("utf-8")).hexdigest()[:60]
                connection.execute(sqlalchemy.text("SELECT GET_LOCK(:k, -1)"), {"k": key})
            else:
                logger.debug("no advisory lock on %s databases; %s not locked", dialect, name)
            yield
    finally:
        engine.dispose()


@contextlib.contextmanager
def storage_lock(url: str, name: str) -> Iterator[None]:
    """An exclusive lock named `name` among every process using the storage at `url`:
    a file beside a SQLite database, an advisory lock on PostgreSQL / MySQL."""
    path = sqlite_file(url)
    if path is not None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
        with file_lock(path.with_name(f".{path.name}.{slug}.lock")):
            yield
    elif url.startswith("sqlite:"):
        yield  # in memory: one process
    else:
        with _server_lock(url, name):
            yield


def _serialise_sqlite_transactions(engine: Any) -> None:
    # SQLAlchemy's documented recipe for real transactions on pysqlite, with IMMEDIATE.
    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the hooks existed are dropped


def _explain_locked_sqlite(engine: Any, url: str, timeout_s: float) -> None:
    @event.listens_for(engine, "handle_error")
    def _locked(context: Any) -> None:
        if LOCKED_MARK in str(context.original_exception):
            raise StorageBusyError(
                f"the Optuna storage {url} stayed locked for {timeout_s:g} s: SQLite takes one "
                f"writer at a time and these workers are too many for it; use PostgreSQL "
                f"(storage: postgresql+psycopg2://USER:PASSWORD@HOST/DB, see {SEVERAL_MACHINES})"
            ) from context.original_exception


class RequeueStaleTrial:
    """Optuna's `RetryHeartbeatStaleTrialCallback`, with the attempt's own attributes (MLflow
    run, trial folder, worker) left behind: the copy is a new attempt at the same trial,
    `origin: retry`, `retry_of` the numbers before it, `retry_of_run` the dead attempt's run."""

    def __init__(self, max_retry: int | None) -> None:
        self.max_retry = max_retry
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def will_retry(self, trial: FrozenTrial) -> bool:
        """Whether this trial, failed now, is queued again (Optuna's count of retries)."""
        earlier = len(trial.system_attrs.get("retry_history", ()))
        return self.max_retry is None or earlier + 1 <= self.max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        dead = copy.deepcopy(trial)
        attrs = {key: value for key, value in trial.user_attrs.items() if key not in ATTEMPT_ATTRS}
        attrs["origin"] = "retry"
        attrs["retry_of"] = sorted({*attrs.get("retry_of", ()), trial.number})
        if "mlflow_run_id" in trial.user_attrs:
            attrs["retry_of_run"] = trial.user_attrs["mlflow_run_id"]
        dead.user_attrs = attrs
        self._retry(study, dead)


def schema_lock(url: str) -> contextlib.AbstractContextManager[None]:
    """Held while a storage is opened, so that two processes never create one database."""
    return storage_lock(url, SCHEMA_LOCK)


def open_storage(settings: StorageSettings) -> optuna.storages.RDBStorage:
    """The RDB storage for `settings` (tables created on first use of a new database)."""
    engine_kwargs: dict[str, Any] = {}
    if settings.is_sqlite:
        engine_kwargs["connect_args"] = {"timeout": settings.sqlite_timeout_s}
        path = settings.sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    else:
        engine_kwargs["pool_pre_ping"] = True
    heartbeat: dict[str, Any] = {}
    if settings.heartbeat_interval_s is not None:
        heartbeat = {
            "heartbeat_interval": settings.heartbeat_interval_s,
            "grace_period": settings.grace_period_s,
            "heartbeat_stale_trial_callback": RequeueStaleTrial(settings.max_retry),
        }
    with schema_lock(settings.url), _explained(settings.url), warnings.catch_warnings():
        # Heartbeats are "experimental" since Optuna 2.9; the warning says nothing to a user.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(settings.url, engine_kwargs=engine_kwargs, **heartbeat)
    if settings.is_sqlite:
        _serialise_sqlite_transactions(storage.engine)
        _explain_locked_sqlite(
            storage.engine, hide_password(settings.url), settings.sqlite_timeout_s
        )
    return storage


# --- MLflow's SQLite store --------------------------------------------------------------------
def sqlite_busy_timeout_uri(uri: str, seconds: float) -> str:
    """A `sqlite:///` URI whose connections wait `seconds` for a lock (pysqlite's default: 5)."""
    if not uri.startswith("sqlite:") or "timeout=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}timeout={seconds:g}"


def _is_locked(error: BaseException) -> bool:
    current: BaseException | None = error
    while current is not None:
        if LOCKED_MARK in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_when_locked(
    call: Callable[[], T], *, store: str, attempts: int = 6, first_wait_s: float = 0.5
) -> T:
    """`call()`, again with growing waits while a SQLite store answers "database is locked";
    then StorageBusyError, which says what to use instead."""
    wait = first_wait_s
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:
            if not _is_locked(error):
                raise
            if attempt == attempts:
                raise StorageBusyError(
                    f"the MLflow store {store} stayed locked after {attempts} attempts: SQLite "
                    f"takes one writer at a time and these workers are too many for it; use an "
                    f"MLflow server backed by PostgreSQL (see {SEVERAL_MACHINES})"
                ) from error
            logger.info("MLflow store locked (attempt %d); retrying in %.1f s", attempt, wait)
            time.sleep(wait * random.uniform(1.0, 1.5))
            wait *= 2
    raise AssertionError("unreachable")
