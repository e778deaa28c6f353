"""Prometheus metrics: requests, model and search time, images ingested, jobs and queue depth.

Under Gunicorn, gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a folder before any worker
imports prometheus_client, so ``GET /metrics`` sums every worker (prometheus_client's multiprocess
mode). An ingestion worker (`flask --app wsgi worker`) serves its own on WORKER_METRICS_PORT.
Jobs by status and the queue's depth are read from the database and the broker at each scrape.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from webapp.services.telemetry import LATENCY, REQUESTS

# Label values come from this set only: a client chooses the method it sends (Gunicorn passes
# any upper-case token), and each new value would be a new series in every worker, kept forever.
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class JobsCollector(Collector):
    """Jobs by status and the work queue's depth, asked at scrape time."""

    def __init__(self, counts: Callable[[], dict[str, int]], depth: Callable[[], int | None]) -> None:
        self.counts = counts
        self.depth = depth

    def collect(self) -> Iterator[Any]:
        """Yield the two gauges (nothing for one whose source cannot be reached)."""
        try:
            jobs = GaugeMetricFamily("webapp_jobs", "Jobs by status", labels=["status"])
            for status, n in sorted(self.counts().items()):
                jobs.add_metric([status], n)
            yield jobs
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            pass
        depth = self.depth()
        if depth is not None:
            yield GaugeMetricFamily("webapp_queue_depth", "Units of ingestion work waiting", value=depth)


def exposition(extra: Collector | None = None) -> bytes:
    """Return every metric of this process (or of all Gunicorn workers) in the text format."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if extra is not None:
        scrape = CollectorRegistry()
        scrape.register(extra)
        body += generate_latest(scrape)
    return body


def init_app(app: Flask, collector: Callable[[], Collector]) -> None:
    """Count and time every request, and serve ``GET /metrics``."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None:
            endpoint = request.url_rule.endpoint if request.url_rule is not None else "unmatched"
            method = request.method if request.method in METHODS else "other"
            REQUESTS.labels(endpoint, method, str(response.status_code)).inc()
            LATENCY.labels(endpoint, method).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        """Serve the metrics in Prometheus's text format."""
        return Response(exposition(collector()), mimetype=CONTENT_TYPE_LATEST)
