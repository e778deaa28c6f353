"""GET /metrics: Prometheus's text format, with requests, model and search time, ingestion and jobs.

The pytest process shares one registry across tests (as a worker process would across requests),
so counters are compared before and after.
"""

from __future__ import annotations

import io
import re

from flask.testing import FlaskClient

from tests.conftest import noise_images, wait_for_job

SEARCH_OK = 'webapp_http_requests_total{endpoint="search.Search",method="POST",status="200"}'
SEARCH_422 = 'webapp_http_requests_total{endpoint="search.Search",method="POST",status="422"}'
SEARCH_TIMED = 'webapp_http_request_duration_seconds_count{endpoint="search.Search",method="POST"}'
ADDED = 'webapp_images_ingested_total{outcome="added"}'


def value(text: str, sample: str) -> float:
    """Return the value of one sample line (name with labels) of an exposition, 0 if absent."""
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_requests_embeds_searches_ingestion_and_jobs(client: FlaskClient) -> None:
    before = client.get("/metrics").get_data(as_text=True)
    images = noise_images(3, seed=21)
    files = {"files": [(io.BytesIO(data), f"{i}.jpg") for i, data in enumerate(images)]}
    job = client.post("/api/v1/jobs", data=files, content_type="multipart/form-data").json
    assert wait_for_job(client, job["url"])["status"] == "done"
    for _ in range(2):
        assert client.post("/api/v1/search", data={"image": (io.BytesIO(images[0]), "q.jpg")}).status_code == 200
    assert client.post("/api/v1/search", data={"image": (io.BytesIO(b"junk"), "q.jpg")}).status_code == 422

    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = response.get_data(as_text=True)

    def grew(sample: str) -> float:
        return value(after, sample) - value(before, sample)

    assert (grew(SEARCH_OK), grew(SEARCH_422), grew(SEARCH_TIMED)) == (2, 1, 3)
    assert grew("webapp_vector_search_seconds_count") == 2
    assert grew("webapp_embed_seconds_count") >= 3  # the job's batch and the two queries
    assert grew(ADDED) == 3
    assert value(after, 'webapp_jobs{status="done"}') == 1  # this app's own database
    assert value(after, "webapp_queue_depth") == 0

    sent: dict[str, object] = {"files": [(io.BytesIO(images[0]), "a.jpg"), (io.BytesIO(b"junk"), "b.jpg")]}
    check = client.post("/api/v1/jobs", data={**sent, "check": "true"}, content_type="multipart/form-data").json
    assert wait_for_job(client, check["url"])["status"] == "done"
    checked = client.get("/metrics").get_data(as_text=True)
    for verdict in ("in_library", "failed"):
        sample = f'webapp_files_checked_total{{verdict="{verdict}"}}'
        assert value(checked, sample) - value(after, sample) == 1, verdict


def test_a_method_a_client_makes_up_is_counted_as_other(client: FlaskClient) -> None:
    # Before, each new method was a new series in every worker, kept forever: anyone could grow
    # the metrics (and the workers' memory) without bound, without credentials.
    for method in ("ABCDEF", "QWERTY", "PROPFIND"):
        assert client.open("/api/v1/stats", method=method).status_code == 405
    after = client.get("/metrics").get_data(as_text=True)
    assert not re.search("ABCDEF|QWERTY|PROPFIND", after)
    assert value(after, 'webapp_http_requests_total{endpoint="unmatched",method="other",status="405"}') == 3
