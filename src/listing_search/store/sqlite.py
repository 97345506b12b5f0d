"""The embedded store: one SQLite file in WAL mode (many readers, one writer at a time, across processes)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from listing_search.errors import DATABASE, StorageError, StorageFull, StorageUnavailable
from listing_search.store.sql import ChangeWaiter, SqlStore

BUSY_TIMEOUT_S = 30
# How often a follower asks whether another connection committed (PRAGMA data_version: a few
# microseconds, no table read). Chosen by bench/bench_replication.py's lag under load: the 0.2 s
# poll alone gave p99 718 ms with 8 search clients and 5 adds/s (docs/performance.md). Once nothing has
# changed for CHANGE_BUSY_S the pause doubles up to CHANGE_TICK_MAX_S: a hundred looks a second each took
# the GIL from a search (bench/bench_search_path.py).
CHANGE_TICK_S, CHANGE_TICK_MAX_S, CHANGE_BUSY_S = 0.01, 0.08, 2.0
FULL = ("database or disk is full", "disk is full")
PROGRAMMING = ("no such table", "no such column", "syntax error")
READ_ONLY = ("readonly", "read-only")
UNAVAILABLE = ("readonly", "read-only", "unable to open", "disk i/o error", "locked", "not a database", "malformed")


class SqliteStore(SqlStore):
    dialect = "sqlite"
    migrations_package = "listing_search.store.migrations.sqlite"

    def __init__(self, url: str) -> None:
        self.path = Path(sqlite_path(url))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(url)

    def _connect(self) -> sqlite3.Connection:
        """Autocommit (transactions are explicit), WAL, foreign keys on, waits for the writer lock."""
        try:
            con = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                                  timeout=BUSY_TIMEOUT_S)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives power loss too
            con.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise self._translate(exc) or exc from exc
        return con

    @contextmanager
    def _transaction(self, con: sqlite3.Connection) -> Iterator[None]:
        con.execute("BEGIN IMMEDIATE")  # takes the write lock now: writers queue, never deadlock
        try:
            yield
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise

    @contextmanager
    def _read_snapshot(self, con: sqlite3.Connection) -> Iterator[None]:
        con.execute("BEGIN")  # a read transaction sees one snapshot of the WAL
        try:
            yield
        finally:
            con.execute("COMMIT")

    def change_waiter(self) -> "DataVersionWaiter":
        return DataVersionWaiter(self._connect)

    def _reserve_ids(self, con: sqlite3.Connection, table: str, column: str, n: int) -> list[int]:
        """After the highest id ever given (AUTOINCREMENT's ``sqlite_sequence``); explicit inserts move it on."""
        row = con.execute(f"SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
                          f"COALESCE((SELECT MAX({column}) FROM {table}), 0))", [table]).fetchone()
        return list(range(int(row[0]) + 1, int(row[0]) + 1 + n))

    def write_problem(self) -> str | None:
        """Why a write would fail, found without writing: a read-only mount, or an unreadable file."""
        self._rows("SELECT 1")
        if os.statvfs(self.path.parent).f_flag & os.ST_RDONLY:
            return f"read-only file system under {self.path.parent}"
        return None

    def _translate(self, exc: Exception) -> Exception | None:
        if not isinstance(exc, sqlite3.Error) or isinstance(exc, sqlite3.IntegrityError):
            return None
        text = str(exc).lower()
        if any(s in text for s in PROGRAMMING):  # a bug, not storage: let it be a 500 with a traceback
            return None
        if any(s in text for s in FULL):
            return StorageFull(f"the store's disk is full ({self.path}): {exc}", DATABASE)
        if isinstance(exc, sqlite3.OperationalError) or any(s in text for s in UNAVAILABLE):
            state = "is read-only" if any(s in text for s in READ_ONLY) else None
            return StorageUnavailable(f"the store cannot be written ({self.path}): {exc}", DATABASE, state)
        return None

    def _sql(self, sql: str, n_in: int = 0) -> str:
        return sql

    def _in_fragment(self, n: int) -> str:
        return f"IN ({', '.join('?' * n)})"

    def _in_args(self, values: list) -> list:
        return list(values)


def sqlite_path(url: str) -> str:
    """``sqlite:///relative/or//absolute/path`` or a plain path -> the file path."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///"):]
    if url.startswith("sqlite://"):
        raise ValueError(f"sqlite URL needs three slashes: sqlite:///path/to/store.sqlite, got {url!r}")
    return url


class DataVersionWaiter(ChangeWaiter):
    """Wakes when another connection (any process) has committed to the file since the last look:
    ``PRAGMA data_version`` on a connection of its own, every ``CHANGE_TICK_S`` while writes flow (a
    change in the last ``CHANGE_BUSY_S``); once quiet the pause doubles up to ``CHANGE_TICK_MAX_S``, so an
    idle store is not asked a hundred times a second (each look takes the GIL from a search) and the
    first write after a quiet spell is seen within 80 ms."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect, self._con, self._version = connect, None, None
        self._tick, self._last_change = CHANGE_TICK_S, time.monotonic()

    def wait(self, timeout: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + timeout
        while not stop.wait(max(0.0, min(self._tick, deadline - time.monotonic()))):
            now = time.monotonic()
            if self._changed():
                self._tick, self._last_change = CHANGE_TICK_S, now
                return
            if now - self._last_change >= CHANGE_BUSY_S:
                self._tick = min(2 * self._tick, CHANGE_TICK_MAX_S)
            if now >= deadline:
                return

    def _changed(self) -> bool:
        """Whether the counter moved since the previous look (kept across waits, so a commit made while
        the follower was applying the last one is seen at once); an error counts as a change."""
        try:
            if self._con is None:
                self._con = self._connect()
            version = self._con.execute("PRAGMA data_version").fetchone()[0]
        except (sqlite3.Error, StorageError):
            self.close()
            return True
        changed, self._version = self._version is not None and version != self._version, version
        return changed

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None
