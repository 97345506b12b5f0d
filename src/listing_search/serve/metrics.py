"""Prometheus metrics: request counts and latency histograms per route template, one registry per app."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's collectors; a fresh registry per app keeps test apps independent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests_total", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "Request latency by route.",
                                 ["method", "route"], buckets=BUCKETS, registry=self.registry)
        self.lag_entries = Gauge("replica_log_lag_entries", "Change-log entries committed but not applied here.",
                                 registry=self.registry)
        self.lag_seconds = Gauge("replica_log_lag_seconds", "Age of the oldest change-log entry not applied here.",
                                 registry=self.registry)
        self.log_seq = Gauge("replica_log_seq", "Change-log sequence this replica's indexes cover.",
                             registry=self.registry)
        self.snapshot_age = Gauge("replica_snapshot_age_seconds", "Seconds since this replica's newest snapshot.",
                                  registry=self.registry)
        self.answers = Counter("search_answers_total", "Search and recommend answers by outcome: results, "
                               "zero_results (nothing passed), no_match (nothing matched well).",
                               ["endpoint", "outcome"], registry=self.registry)
        self.corrections = Counter("search_spelling_corrections_total", "Searches whose words were corrected.",
                                   registry=self.registry)
        self.photo_queue = PhotoQueueCollector()
        self.registry.register(self.photo_queue)

    def observe_answer(self, endpoint: str, n_results: int, no_match: bool, corrected: bool = False) -> None:
        outcome = "no_match" if no_match else "zero_results" if n_results == 0 else "results"
        self.answers.labels(endpoint, outcome).inc()
        if corrected:
            self.corrections.inc()

    def observe_replica(self, live: object) -> None:
        """Refresh the replication gauges from the engine's derived indexes (``index.live.LiveIndexes``)."""
        lag = live.lag()
        self.lag_entries.set(lag["entries"])
        self.lag_seconds.set(lag["seconds"])
        self.log_seq.set(live.seq)
        self.snapshot_age.set(time.time() - live.snapshot_at if live.snapshot_at else float("nan"))


class PhotoQueueCollector:
    """The photo queue's depth and counters, read at scrape time (the queue keeps its own counts)."""

    def __init__(self) -> None:
        self.stats: Callable[[], object] | None = None  # vision.batcher.PhotoQueue.stats, set by /metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if self.stats is None:
            return
        s = self.stats()
        yield GaugeMetricFamily("photo_queue_waiting", "Photo jobs waiting for admission.", value=s.waiting)
        yield GaugeMetricFamily("photo_queue_in_flight", "Photo jobs decoding or in the model.", value=s.in_flight)
        yield GaugeMetricFamily("photo_queue_decode_bytes", "Estimated decode memory of admitted jobs.",
                                value=s.decode_bytes)
        yield CounterMetricFamily("photo_queue_rejected", "Photo jobs refused with 503 (queue full).",
                                  value=s.rejected)
        yield CounterMetricFamily("photo_batches", "Vision model calls.", value=s.batches)
        yield CounterMetricFamily("photo_batched_jobs", "Photos through the model (/ batches = mean batch).",
                                  value=s.batched_jobs)


class MetricsMiddleware:
    """Times every HTTP request; the route label is the matched path template, not the raw URL."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], label, str(status)).inc()
            self.metrics.latency.labels(scope["method"], label).observe(time.perf_counter() - start)


router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, summary="Prometheus metrics (text exposition format)")
def metrics(request: Request) -> Response:
    engine = getattr(request.app.state, "engine", None)
    if engine is not None:
        request.app.state.metrics.observe_replica(engine.live)
        request.app.state.metrics.photo_queue.stats = engine.photos.stats
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
