"""The metrics the services and the web layer record (exposed by webapp.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("webapp_http_requests", "HTTP requests answered", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "webapp_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["endpoint", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EMBED = Histogram(
    "webapp_embed_seconds",
    "Time to decode and embed one query or one batch of files",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SEARCH = Histogram(
    "webapp_vector_search_seconds",
    "Time of one Milvus similarity search",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
)
INGESTED = Counter("webapp_images_ingested", "Files processed by uploads and jobs, by outcome", ["outcome"])
CHECKED = Counter("webapp_files_checked", "Files checks compared with the library, by verdict", ["verdict"])
QUERIES = Counter(
    "webapp_search_queries", "Search queries embedded, by where: the web worker, or a query helper", ["where"]
)
HELPER_RESTARTS = Counter("webapp_query_helper_restarts", "Query helper processes that died and were replaced")
