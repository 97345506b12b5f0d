"""The store for several replicas: PostgreSQL through psycopg 3.

Writers take one transaction-scoped advisory lock, so log sequence numbers are assigned and
committed in the same order (a follower reading ``seq > n`` never skips a late commit). A lost
connection is reopened on the next call; the write in flight fails with ``StorageUnavailable``.
A transaction that appends to the log NOTIFYs ``listing_search_log`` (delivered on commit, once per
transaction), so followers LISTENing on it poll at once instead of at their next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from listing_search.errors import DATABASE, StorageFull, StorageUnavailable
from listing_search.store.sql import ChangeWaiter, SqlStore

log = logging.getLogger(__name__)
WRITE_LOCK = 7_242_424_242  # pg_advisory_xact_lock key of the store's writers
CONNECT_TIMEOUT_S = 5
CHANNEL = "listing_search_log"  # NOTIFY'd by every transaction that appends to the change log
STOP_CHECK_S = 0.25  # a waiting follower notices stop() this often


class PostgresStore(SqlStore):
    dialect = "postgres"
    migrations_package = "listing_search.store.migrations.postgres"

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StorageUnavailable(f"cannot connect to the PostgreSQL store: {exc}", DATABASE,
                                     "is unreachable") from exc

    @contextmanager
    def _transaction(self, con: Any) -> Iterator[None]:
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK])
            yield

    @contextmanager
    def _read_snapshot(self, con: Any) -> Iterator[None]:
        with con.transaction():
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield

    def _announce(self, con: Any) -> None:
        con.execute(f"NOTIFY {CHANNEL}")

    def change_waiter(self) -> "ListenWaiter":
        return ListenWaiter(self.url)

    def _after_bulk_insert(self, con: Any) -> None:
        for table, column in (("listings", "key"), ("photos", "vector_id"), ("changes", "seq"),
                              ("saved_searches", "id"), ("alerts", "id")):
            con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                        f"GREATEST((SELECT COALESCE(MAX({column}), 0) FROM {table}), 1))")

    def _reserve_ids(self, con: Any, table: str, column: str, n: int) -> list[int]:
        rows = con.execute(f"SELECT nextval(pg_get_serial_sequence('{table}', '{column}')) "
                           "FROM generate_series(1, %s)", [n]).fetchall()
        return sorted(int(r[0]) for r in rows)

    def _insert_rows(self, con: Any, table: str, cols: list[str], rows: list[list]) -> None:
        """``COPY ... FROM STDIN``: one round trip streaming every row, in the caller's transaction."""
        with con.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def write_problem(self) -> str | None:
        """Why a write would fail, found without writing: a standby or read-only server, no connection."""
        (read_only,) = self._rows("SHOW transaction_read_only")[0]
        return "the PostgreSQL server only accepts reads (transaction_read_only)" if read_only == "on" else None

    def _translate(self, exc: Exception) -> Exception | None:
        import psycopg

        if isinstance(exc, psycopg.errors.DiskFull):
            return StorageFull(f"the PostgreSQL store's disk is full: {exc}", DATABASE)
        if isinstance(exc, (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)):
            return StorageUnavailable(f"the PostgreSQL store refuses writes: {exc}", DATABASE, "refuses writes")
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return StorageUnavailable(f"the PostgreSQL store is unreachable: {exc}", DATABASE, "is unreachable")
        return None

    def _sql(self, sql: str, n_in: int = 0) -> str:
        return sql.replace("?", "%s")

    def _in_fragment(self, n: int) -> str:
        return "= ANY(?)"

    def _in_args(self, values: list) -> list:
        return [list(values)]


class ListenWaiter(ChangeWaiter):
    """Wakes on a NOTIFY of ``CHANNEL`` (any replica's commit to the log), on a connection of its own.

    Without a connection (the server is down) it sleeps ``timeout`` and tries again on the next wait;
    a fresh LISTEN wakes at once, since commits made before it was listening were not announced to it."""

    def __init__(self, url: str) -> None:
        self.url, self._con = url, None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        if self._con is None:
            if self._listen():
                return
            stop.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        try:
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if self._notified(min(left, STOP_CHECK_S)):
                    return
        except Exception as exc:  # a lost connection: poll now, listen again on the next wait
            log.info("change log notifications lost (%s): listening again", type(exc).__name__)
            self.close()

    def _notified(self, timeout: float) -> bool:
        """Whether a notification came within ``timeout``; any others already queued are drained with
        it (one poll covers every commit so far). Unread ones wait in the socket, never lost."""
        assert self._con is not None
        if not any(True for _ in self._con.notifies(timeout=timeout, stop_after=1)):
            return False
        for _ in self._con.notifies(timeout=0):
            pass
        return True

    def _listen(self) -> bool:
        import psycopg

        try:
            self._con = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            self._con.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error:
            self.close()
            return False
        return True

    def close(self) -> None:
        if self._con is not None:
            try:
                self._con.close()
            except Exception:  # already broken: nothing more to release
                pass
            self._con = None
