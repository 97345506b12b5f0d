"""The alert matcher: follows the change log and writes the alerts new listings make, exactly one
replica at a time, at least once.

**Who matches.** Every serving process (``make run``'s single one included) runs a
:class:`MatcherService` thread; the one holding the lease in the store (``matcher`` row: holder,
term, expiry) matches, renewing it every third of ``alerts.lease_ttl_s``. A process that stops
cleanly gives the lease up; one that dies (kill -9, a lost machine) stops renewing, and the first
other replica to look after the lease ran out takes it with a higher term. A replica that paused
past its lease and wakes up still believing it holds it writes nothing: every alert transaction
checks holder, term and cursor (``SqlStore.write_alerts``) and fails whole otherwise.

**At least once, never twice.** The cursor (the last log sequence whose alerts are written) moves
only in the transaction that writes those alerts. A matcher killed before the commit leaves the
cursor where it was, and whoever holds the lease next matches those entries again; one alert per
(saved search, listing) is a unique key, so nothing is written twice.

**What it reads.** Entries up to what this replica's indexes have applied (``LiveIndexes.seq``),
matched against the in-memory catalogue (``search.alerts``); the saved searches from the store
(new ones before each batch: a search commits before any entry logged after its ``created_seq``,
so it is loaded before such an entry is matched; deletions every ``RECONCILE_S``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from listing_search.core.query import Filters
from listing_search.errors import StorageError
from listing_search.search.alerts import AlertMatcher, NewListing, SavedSearch, SavedSearchIndex
from listing_search.search.engine import SearchEngine
from listing_search.settings import AlertSettings
from listing_search.store.models import UPSERT
from listing_search.store.saved import Lease, LeaseLost, SavedSearchRow

log = logging.getLogger(__name__)

RECONCILE_S = 30.0  # how often searches deleted in the store (by their buyer, by expiry) leave the index
RETRY_S = 1.0  # after a storage error


def filters_of(query: dict) -> Filters:
    f = query.get("filters") or {}
    return Filters(f.get("category"), f.get("price_min"), f.get("price_max"), f.get("location"))


def saved_search(row: SavedSearchRow) -> SavedSearch:
    return SavedSearch.of(row.id, row.created_seq, row.query.get("words"), filters_of(row.query), row.text_vector,
                          row.image_vector)


class MatcherService:
    """The lease, the saved-search index and the loop that writes alerts, for one serving process."""

    def __init__(self, engine: SearchEngine, settings: AlertSettings, holder: str | None = None) -> None:
        self.engine, self.settings = engine, settings
        self.store, self.live = engine.store, engine.live
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease: Lease | None = None
        self.error: str | None = None
        self.written = 0
        self._index_term = 0  # the term the index was loaded under (a new term reloads it)
        self._loaded = 0  # highest saved-search id loaded
        self._next_take = self._reconciled = self._expired = 0.0
        self._reset()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-matcher", daemon=True)

    def _reset(self) -> None:
        live = self.live

        def bm25_terms(text: str) -> set[str]:
            return live.lexical.terms_of(text) if live.lexical is not None else set()

        self.index = SavedSearchIndex(self.engine.settings.rank.word_tiers, bm25_terms)
        self.matcher = AlertMatcher(self.engine.pipeline, self.index)
        self._loaded = 0

    # ------------------------------------------------------------- running
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop matching and give the lease up, so another replica takes over at once."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if self.lease is not None:
            try:
                self.store.release_lease(self.holder)
            except StorageError as exc:
                log.warning("matcher lease not released (it runs out by itself): %s", exc.reason)
            self.lease = None

    @property
    def leading(self) -> bool:
        return self.lease is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
                self.error = None
            except StorageError as exc:
                self.error, busy = exc.reason, False
                log.warning("alert matcher: %s", exc.reason)
                self._stop.wait(RETRY_S)
            except Exception as exc:  # keep going: one bad batch must not stop alerts for good
                self.error, busy = f"{type(exc).__name__}: {exc}", False
                log.exception("alert matcher failed")
                self._stop.wait(RETRY_S)
            if not busy:
                self._stop.wait(self.settings.poll_s)

    def step(self) -> bool:
        """One round: keep or take the lease; if held, match one batch of what this replica applied.
        Returns whether a batch was matched (more may wait)."""
        now = time.monotonic()
        if now >= self._next_take:
            self._take_lease(now)
        if self.lease is None:
            return False
        self._maintain(now)
        if self.lease.done_seq >= self.live.seq:
            return False
        self._match_batch()
        return True

    def _take_lease(self, now: float) -> None:
        lease = self.store.take_lease(self.holder, self.settings.lease_ttl_s)
        self._next_take = now + self.settings.lease_ttl_s / 3
        if lease is None:
            if self.lease is not None:
                log.warning("alert matcher: lease taken by another replica; matching stops here")
            self.lease = None
            return
        if lease.term != self._index_term:
            log.info("alert matcher: lease taken (term %d) at log seq %d", lease.term, lease.done_seq)
            self._reset()
            self._index_term = lease.term
        self.lease = lease

    def _maintain(self, now: float) -> None:
        """Searches deleted in the store leave the index; expired searches and alerts are deleted."""
        if now - self._expired >= self.settings.expire_every_s:
            searches, alerts = self.store.expire_saved(self.settings.idle_days * 86400, self.settings.keep_days * 86400)
            if searches or alerts:
                log.info("alerts: %d idle saved searches and %d old alerts deleted", searches, alerts)
            self._expired, self._reconciled = now, 0.0
        if now - self._reconciled >= RECONCILE_S:
            self.index.keep_only(self.store.saved_search_ids())
            self._reconciled = now

    def _load_new_searches(self) -> None:
        while True:
            rows = self.store.saved_search_rows(self._loaded)
            if not rows:
                return
            for row in rows:
                self.matcher.add(saved_search(row))
            self._loaded = rows[-1].id

    # ------------------------------------------------------------- one batch
    def _match_batch(self) -> int:
        """Match the log entries after the cursor that this replica has applied; write their alerts and
        the new cursor in one transaction. Returns how many alerts were found."""
        assert self.lease is not None
        applied = self.live.seq  # read before the catalogue: the view holds at least these entries
        changes = [c for c in self.store.changes_since(self.lease.done_seq, self.settings.batch) if c.seq <= applied]
        if not changes:
            return 0
        self._load_new_searches()  # after reading the entries: every search they can alert is committed
        catalog = self.live.catalog
        adds = {c.listing_key: c for c in reversed(changes) if c.op == UPSERT}  # each listing's first entry here
        first = self.store.first_seqs(list(adds)) if adds and len(self.index) else {}
        new = [NewListing(catalog.row_of_key(key), key, c.listing_id, first[key], c.seq)
               for key, c in sorted(adds.items(), key=lambda kv: kv[1].seq) if key in first]
        pairs = self.matcher.match(catalog, new) if new else []
        alerts = [(sid, x.key, x.listing_id, x.seq) for sid, x in pairs]
        try:
            self.lease = self.store.write_alerts(self.lease, changes[-1].seq, alerts, self.settings.commit_hold_s)
        except LeaseLost as exc:
            log.warning("alert matcher: %s", exc)
            self.lease = None
            return 0
        self.written += len(alerts)
        if alerts:
            log.info("alerts: %d written for log entries %d..%d", len(alerts), changes[0].seq, changes[-1].seq)
        return len(alerts)
