"""Saved searches, their alerts, and the alert matcher's lease and log cursor (store migration 0005).

A buyer is anonymous: the page makes a random token and the store keeps only its SHA-256 (``owner``).
The matcher's position in the change log (``matcher.done_seq``) moves only in the transaction that
writes the alerts found up to it, and only while the writer still holds the lease it took: a killed
matcher leaves the cursor where its last commit put it (nothing lost, the next holder redoes the rest),
and one alert per (saved search, listing) is a unique key (a redo duplicates nothing). A takeover
raises the lease's ``term``; a writer whose term is no longer the store's writes nothing.

A mixin of :class:`listing_search.store.sql.SqlStore`: it uses that class's connections and dialect.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

MATCHER = "alerts"  # the matcher row's name


class LeaseLost(RuntimeError):
    """Another replica took the matcher's lease (or moved its cursor): this one wrote nothing."""


class SavedSearchLimit(ValueError):
    """A buyer already keeps the most saved searches allowed."""


@dataclass(frozen=True)
class SavedSearchRow:
    """A saved search as stored: ``query`` holds the words as typed and as searched, the filters and the
    label the page shows; a photo is kept as its embedding, never the photo."""

    id: int
    owner: str
    created_at: float
    used_at: float
    created_seq: int
    query: dict
    text_vector: np.ndarray | None
    image_vector: np.ndarray | None


@dataclass(frozen=True)
class AlertRow:
    id: int
    search_id: int
    listing_key: int
    listing_id: str
    seq: int
    at: float


@dataclass(frozen=True)
class Lease:
    """The matcher's row: who holds it, its term, how far alerts are written, until when it holds."""

    holder: str | None
    term: int
    done_seq: int
    expires_at: float


SEARCH_COLUMNS = "id, owner, created_at, used_at, created_seq, query, text_vector, image_vector"


class SavedSearchTables:
    """Saved searches, alerts and the matcher lease, in the store of record's transactions."""

    # ------------------------------------------------------------- saved searches
    def save_search(self, owner: str, query: dict, text_vector: np.ndarray | None,
                    image_vector: np.ndarray | None, limit: int) -> SavedSearchRow:
        """Store a search for ``owner``; ``SavedSearchLimit`` when they keep ``limit`` already.

        One write transaction, serialised with every listing write: the log head read here is the
        last entry committed before the search exists, so every later listing is matched against it."""
        now = time.time()
        with self.write() as con:
            kept = int(con.execute(self._sql("SELECT COUNT(*) FROM saved_searches WHERE owner = ?"),
                                   [owner]).fetchone()[0])
            if kept >= limit:
                raise SavedSearchLimit(f"{kept} saved searches already: {limit} is the most kept for one buyer; "
                                       "delete one first")
            head = int(con.execute(self._sql("SELECT COALESCE(MAX(seq), 0) FROM changes")).fetchone()[0])
            sid = self._insert_returning(
                con, "INSERT INTO saved_searches (owner, created_at, used_at, created_seq, query, text_vector, "
                     "image_vector) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [owner, now, now, head, json.dumps(query, sort_keys=True), _blob(text_vector), _blob(image_vector)],
                "id")
        return SavedSearchRow(sid, owner, now, now, head, query, text_vector, image_vector)

    def saved_searches(self, owner: str) -> list[SavedSearchRow]:
        """One buyer's saved searches, oldest first."""
        rows = self._rows(f"SELECT {SEARCH_COLUMNS} FROM saved_searches WHERE owner = ? ORDER BY id", [owner])
        return [_search(r) for r in rows]

    def saved_search_rows(self, after_id: int = 0, limit: int = 5000) -> list[SavedSearchRow]:
        """Every buyer's saved searches with an id above ``after_id``, in id order (the matcher loads them)."""
        rows = self._rows(f"SELECT {SEARCH_COLUMNS} FROM saved_searches WHERE id > ? ORDER BY id LIMIT ?",
                          [int(after_id), int(limit)])
        return [_search(r) for r in rows]

    def saved_search_ids(self) -> set[int]:
        return {int(r[0]) for r in self._rows("SELECT id FROM saved_searches")}

    def delete_saved_search(self, owner: str, search_id: int) -> bool:
        """Delete one of ``owner``'s saved searches and its alerts; False when they have none of that id."""
        with self.write() as con:
            found = con.execute(self._sql("SELECT 1 FROM saved_searches WHERE id = ? AND owner = ?"),
                                [int(search_id), owner]).fetchone()
            if found is None:
                return False
            con.execute(self._sql("DELETE FROM alerts WHERE search_id = ?"), [int(search_id)])
            con.execute(self._sql("DELETE FROM saved_searches WHERE id = ?"), [int(search_id)])
        return True

    def touch_saved_searches(self, owner: str, every_s: float = 3600.0) -> None:
        """Mark ``owner``'s searches as used now (idle ones expire); written at most every ``every_s``."""
        now = time.time()
        if not self._rows("SELECT 1 FROM saved_searches WHERE owner = ? AND used_at < ? LIMIT 1",
                          [owner, now - every_s]):
            return
        with self.write() as con:
            con.execute(self._sql("UPDATE saved_searches SET used_at = ? WHERE owner = ?"), [now, owner])

    def expire_saved(self, idle_s: float, keep_s: float, now: float | None = None) -> tuple[int, int]:
        """Delete saved searches unused for ``idle_s`` (with their alerts) and alerts older than ``keep_s``;
        returns how many of each."""
        now = time.time() if now is None else now
        with self.write() as con:
            old = [int(r[0]) for r in con.execute(self._sql("SELECT id FROM saved_searches WHERE used_at < ?"),
                                                   [now - idle_s]).fetchall()]
            alerts = 0
            for start in range(0, len(old), 500):
                part = old[start:start + 500]
                alerts += con.execute(self._sql(self._sql_in("DELETE FROM alerts WHERE search_id {in}", len(part))),
                                      self._in_args(part)).rowcount
                con.execute(self._sql(self._sql_in("DELETE FROM saved_searches WHERE id {in}", len(part))),
                            self._in_args(part))
            alerts += con.execute(self._sql("DELETE FROM alerts WHERE at < ?"), [now - keep_s]).rowcount
        return len(old), int(alerts)

    # ------------------------------------------------------------- alerts
    def alerts_after(self, owner: str, after: int, limit: int) -> list[AlertRow]:
        """``owner``'s alerts with an id above ``after``, oldest first."""
        rows = self._rows("SELECT id, search_id, listing_key, listing_id, seq, at FROM alerts WHERE owner = ? "
                          "AND id > ? ORDER BY id LIMIT ?", [owner, int(after), int(limit)])
        return [AlertRow(int(i), int(s), int(k), lid, int(q), float(a)) for i, s, k, lid, q, a in rows]

    def alert_counts(self, owner: str) -> dict[int, int]:
        """How many alerts each of ``owner``'s saved searches holds."""
        return {int(s): int(n) for s, n in
                self._rows("SELECT search_id, COUNT(*) FROM alerts WHERE owner = ? GROUP BY search_id", [owner])}

    def alert_head(self) -> int:
        """The newest alert id (0 when there is none): a stream asks its buyer's rows only when it grew."""
        return int(self._rows("SELECT COALESCE(MAX(id), 0) FROM alerts")[0][0])

    def all_alerts(self) -> list[AlertRow]:
        rows = self._rows("SELECT id, search_id, listing_key, listing_id, seq, at FROM alerts ORDER BY id")
        return [AlertRow(int(i), int(s), int(k), lid, int(q), float(a)) for i, s, k, lid, q, a in rows]

    def first_seqs(self, keys: list[int]) -> dict[int, int]:
        """Each listing key's first change-log sequence (its add), by the ``changes_listing`` index."""
        rows = self._rows_in("SELECT listing_key, MIN(seq) FROM changes WHERE listing_key {in} GROUP BY listing_key",
                             [int(k) for k in keys])
        return {int(k): int(s) for k, s in rows}

    def shared_secret(self, name: str) -> bytes:
        """A random 32-byte key every replica of this store shares (made on first use, kept in ``meta``):
        it signs the alert stream's cookies, so any replica can check one another replica set."""
        value = self.get_meta(name)
        if value is None:
            with self.write() as con:
                if con.execute(self._sql("SELECT 1 FROM meta WHERE name = ?"), [name]).fetchone() is None:
                    con.execute(self._sql("INSERT INTO meta (name, value) VALUES (?, ?)"),
                                [name, json.dumps(os.urandom(32).hex())])
            value = self.get_meta(name)
        return bytes.fromhex(value)

    # ------------------------------------------------------------- the matcher's lease and cursor
    def matcher_lease(self) -> Lease | None:
        rows = self._rows("SELECT holder, term, done_seq, expires_at FROM matcher WHERE name = ?", [MATCHER])
        return _lease(rows[0]) if rows else None

    def take_lease(self, holder: str, ttl_s: float) -> Lease | None:
        """Take or renew the matcher's lease for ``ttl_s``: granted when ``holder`` has it or it expired
        (a takeover raises the term); None while another holder's lease runs. The first lease starts
        the cursor at the oldest saved search's log head (or the head): nothing after it is skipped."""
        now = time.time()
        current = self.matcher_lease()
        if current is not None and current.holder != holder and current.expires_at > now:
            return None  # read first: a replica that is not the matcher does not queue for the write lock
        with self.write() as con:
            row = con.execute(self._sql("SELECT holder, term, done_seq, expires_at FROM matcher WHERE name = ?"),
                              [MATCHER]).fetchone()
            if row is None:
                start = con.execute(self._sql("SELECT COALESCE((SELECT MIN(created_seq) FROM saved_searches), "
                                              "(SELECT COALESCE(MAX(seq), 0) FROM changes))")).fetchone()[0]
                con.execute(self._sql("INSERT INTO matcher (name, done_seq, holder, term, expires_at) "
                                      "VALUES (?, ?, ?, 1, ?)"), [MATCHER, int(start), holder, now + ttl_s])
                return Lease(holder, 1, int(start), now + ttl_s)
            lease = _lease(row)
            if lease.holder != holder and lease.expires_at > now:
                return None
            term = lease.term if lease.holder == holder else lease.term + 1
            con.execute(self._sql("UPDATE matcher SET holder = ?, term = ?, expires_at = ? WHERE name = ?"),
                        [holder, term, now + ttl_s, MATCHER])
        return Lease(holder, term, lease.done_seq, now + ttl_s)

    def release_lease(self, holder: str) -> None:
        """Give the lease up (a clean stop): another replica may take it at once."""
        with self.write() as con:
            con.execute(self._sql("UPDATE matcher SET expires_at = 0 WHERE name = ? AND holder = ?"), [MATCHER, holder])

    def write_alerts(self, lease: Lease, upto: int, alerts: list[tuple[int, int, str, int]],
                     hold_s: float = 0.0) -> Lease:
        """Alerts (search id, listing key, listing id, log seq) found up to log sequence ``upto``, and the
        cursor moved to it, in one transaction; ``LeaseLost`` (nothing written) unless ``lease`` is still
        the store's (same holder and term, cursor where it left it). Alerts of searches deleted meanwhile
        are dropped; an alert already there is kept as it was. ``hold_s`` keeps the transaction open that
        long before it commits (tests kill the process there)."""
        now = time.time()
        with self.write() as con:
            row = con.execute(self._sql("SELECT holder, term, done_seq, expires_at FROM matcher WHERE name = ?"),
                              [MATCHER]).fetchone()
            store = _lease(row) if row is not None else None
            if store is None or (store.holder, store.term, store.done_seq) != (lease.holder, lease.term, lease.done_seq):
                raise LeaseLost(f"the matcher's lease is {store}, not {lease}: nothing written")
            if alerts:
                self._insert_alerts(con, alerts, now)
            if hold_s > 0:
                time.sleep(hold_s)
            con.execute(self._sql("UPDATE matcher SET done_seq = ? WHERE name = ?"), [int(upto), MATCHER])
        return Lease(lease.holder, lease.term, int(upto), lease.expires_at)

    def _insert_alerts(self, con: Any, alerts: list[tuple[int, int, str, int]], now: float) -> None:
        sql = self._sql("INSERT INTO alerts (search_id, owner, listing_key, listing_id, seq, at) "
                        "SELECT id, owner, ?, ?, ?, ? FROM saved_searches WHERE id = ? "
                        "ON CONFLICT (search_id, listing_key) DO NOTHING")
        cur = con.cursor()
        try:
            cur.executemany(sql, [[int(k), lid, int(seq), now, int(sid)] for sid, k, lid, seq in alerts])
        finally:
            cur.close()


def _blob(v: np.ndarray | None) -> bytes | None:
    return None if v is None else np.ascontiguousarray(v, dtype="<f4").ravel().tobytes()


def _vector(b: bytes | memoryview | None) -> np.ndarray | None:
    return None if b is None else np.frombuffer(bytes(b), dtype="<f4").copy()


def _search(r: tuple) -> SavedSearchRow:
    return SavedSearchRow(int(r[0]), r[1], float(r[2]), float(r[3]), int(r[4]), json.loads(r[5]),
                          _vector(r[6]), _vector(r[7]))


def _lease(r: tuple) -> Lease:
    return Lease(r[0], int(r[1]), int(r[2]), float(r[3]))
