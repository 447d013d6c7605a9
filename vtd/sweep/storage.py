"""The Optuna storage, set up in one place: engine settings, SQLite locking, heartbeats.

SQLite: Optuna claims a queued trial by reading its state and writing RUNNING; the row lock
it asks for (`SELECT ... FOR UPDATE`) does not exist in SQLite, and Python's sqlite3 driver
starts no transaction for a SELECT, so two workers can claim the same trial (measured: 170
claims of 150 queued trials by 4 processes). Every transaction here begins with
`BEGIN IMMEDIATE`, which takes SQLite's write lock first, so claims are serialised; a busy
database is waited for (`timeout`) rather than failing with "database is locked".
PostgreSQL / MySQL: Optuna's row lock works as it is.

Heartbeats (for workers that may be killed) are set here too; they need the RDB storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import event

logger = logging.getLogger(__name__)


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
        if not self.is_sqlite or self.url.endswith(":memory:"):
            return None
        return Path(self.url.removeprefix("sqlite:///"))

    def exists(self) -> bool:
        """False only when a SQLite database file is missing (servers are assumed up)."""
        path = self.sqlite_path()
        return path is None or path.is_file()


def _serialise_sqlite_transactions(engine: Any) -> None:
    # SQLAlchemy's documented recipe for real transactions on pysqlite, with IMMEDIATE.
    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the hooks existed are dropped


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
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=settings.max_retry
            ),
        }
    storage = optuna.storages.RDBStorage(settings.url, engine_kwargs=engine_kwargs, **heartbeat)
    if settings.is_sqlite:
        _serialise_sqlite_transactions(storage.engine)
    return storage
