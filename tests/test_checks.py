"""Checking files against the library: a job that adds nothing and tells of each file whether the
library holds it, something like it, or nothing like it (real model, Milvus Lite)."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import csrf_token, jpeg, near_duplicate, noise_images, wait_for_job
from tests.test_jobs import import_folder, start
from webapp.runtime import EXTENSION
from webapp.services import checks, units
from webapp.services.catalog import Catalog
from webapp.services.checks import MATCHES, NEW, SIMILAR, _verdict
from webapp.services.fingerprints import fingerprint, to_bytes
from webapp.services.grouping import NEIGHBOURS
from webapp.services.jobs import JobStatus


def resaved(data: bytes) -> bytes:
    """Return a copy halved and saved again at JPEG quality 30, as a chat app sends a photo on."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    return jpeg(img.resize((img.width // 2, img.height // 2)), quality=30)


def add(client: FlaskClient, data: bytes, name: str, album: str = "") -> str:
    added = client.post("/api/v1/images", data={"image": (io.BytesIO(data), name), "album": album})
    assert added.status_code == 201, added.json
    return str(added.json["id"])


def findings(client: FlaskClient, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    answer = client.get(f"/api/v1/jobs/{job['id']}/matches", query_string={"page_size": 100})
    assert answer.status_code == 200, answer.json
    return {found["name"]: found for found in answer.json}


def test_a_check_tells_what_the_library_holds_of_each_file_and_adds_nothing(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    cat = add(client, photos["chelsea"], "cat.jpg", "pets")
    astronaut = add(client, photos["astronaut"], "astronaut.jpg")
    add(client, photos["coffee"], "coffee.jpg")
    folder = import_folder(app, "incoming")
    (folder / "sub").mkdir()
    (folder / "same.jpg").write_bytes(photos["chelsea"])  # the very bytes
    (folder / "sub" / "near.jpg").write_bytes(resaved(photos["astronaut"]))
    (folder / "cropped.jpg").write_bytes(near_duplicate(photos["astronaut"]))  # a tenth off each side: another picture
    (folder / "other.jpg").write_bytes(photos["rocket"])  # nothing like it
    (folder / "broken.jpg").write_bytes(b"not an image")

    job = wait_for_job(client, start(client, json={"folder": str(folder), "check": True})["url"])
    counts = (job["kind"], job["status"], job["processed"], job["failed"], job["added"])
    assert counts == ("check-folder", "done", 5, 1, 0)
    assert job["compared"] == {"in_library": 1, "similar": 1, "new": 2}
    assert client.get("/api/v1/stats").json["count"] == 3  # nothing added

    found = findings(client, job)
    assert sorted(found) == ["broken.jpg", "cropped.jpg", "other.jpg", "same.jpg", "sub/near.jpg"]
    same, near, other = found["same.jpg"], found["sub/near.jpg"], found["other.jpg"]
    assert same["verdict"] == "in_library" and same["matches"][0]["image_id"] == cat
    assert same["matches"][0]["score"] == 1.0 and same["matches"][0]["image"]["filename"] == "cat.jpg"
    assert same["matches"][0]["same_picture"] and not any(m["same_picture"] for m in same["matches"][1:])
    assert near["verdict"] == "similar" and near["matches"][0]["image_id"] == astronaut
    assert near["matches"][0]["same_picture"] and near["matches"][0]["score"] < app.config["DUPLICATE_THRESHOLD"]
    assert other["verdict"] == "new" and not any(m["same_picture"] for m in other["matches"])
    cropped = found["cropped.jpg"]  # as a scan would judge it: not the same picture, though the closest
    assert cropped["verdict"] == "new" and cropped["matches"][0]["image_id"] == astronaut
    assert len(other["matches"]) == 3 and [m["score"] for m in other["matches"]] == sorted(
        (m["score"] for m in other["matches"]), reverse=True
    )
    assert found["broken.jpg"]["verdict"] == "failed" and found["broken.jpg"]["reason"]
    assert found["broken.jpg"]["matches"] == []

    # What it found new is loaded on request, from the folder, and nothing else.
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert f'action="/jobs/{job["id"]}/add-new"' in page and "Add the 2 new files</button>" in page
    form = {"album": "incoming", "csrf_token": csrf_token(client, f"/jobs/{job['id']}")}
    started = client.post(f"/jobs/{job['id']}/add-new", data=form)
    assert started.status_code == 303, started.get_data(as_text=True)
    load = wait_for_job(client, "/api/v1" + started.headers["Location"])
    assert (load["kind"], load["total"], load["added"], load["failed"]) == ("folder", 2, 2, 0)
    listed = client.get("/api/v1/images", query_string={"album": "incoming"}).json
    assert sorted(i["filename"] for i in listed) == ["cropped.jpg", "other.jpg"]
    logged = client.get("/api/v1/activity", query_string={"image": listed[0]["id"]}).json
    assert logged[0]["note"].endswith(f": the new files of the check {job['id']}")

    # Pages past a position, as for failures.
    last = max(f["position"] for f in found.values())
    past = client.get(f"/api/v1/jobs/{job['id']}/matches", query_string={"after": last - 1}).json
    assert [f["position"] for f in past] == [last]
    # A load lists no findings; an unknown job is 404.
    load = wait_for_job(client, start(client, json={"folder": str(folder)})["url"])
    assert client.get(f"/api/v1/jobs/{load['id']}/matches").json == []
    assert load["compared"] is None
    again = client.post(f"/api/v1/jobs/{job['id']}/add-new", json={"album": "again"})  # the API's way
    assert wait_for_job(client, again.json["url"])["duplicates"] == 2
    assert job["new_kept_until"] is None  # a folder's check reads the folder again
    for refused, says in ((load["id"], "only a check can add"), ("0" * 32, "")):
        answer = client.post(f"/api/v1/jobs/{refused}/add-new", json={})
        assert answer.status_code == (409 if says else 404) and says in answer.json["message"]
    assert client.get("/api/v1/jobs/0123456789abcdef0123456789abcdef/matches").status_code == 404


def test_a_check_compares_with_one_album_and_takes_uploads_and_archives(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    cat = add(client, photos["chelsea"], "cat.jpg", "pets")
    add(client, photos["astronaut"], "astronaut.jpg", "people")
    near = resaved(photos["astronaut"])
    files = {"files": [(io.BytesIO(photos["chelsea"]), "a.jpg"), (io.BytesIO(near), "b.jpg")], "check": "true"}
    started = start(client, data={**files, "album": "pets"}, content_type="multipart/form-data")
    assert started["kind"] == "check-files" and started["album"] == "pets"
    job = wait_for_job(client, started["url"])
    found = findings(client, job)
    assert found["a.jpg"]["verdict"] == "in_library" and found["a.jpg"]["matches"][0]["image_id"] == cat
    assert found["b.jpg"]["verdict"] == "new"  # its original is in another album
    assert {m["image"]["album"] for m in found["b.jpg"]["matches"]} == {"pets"}

    # It keeps the file it found new (only that one), to add it without uploading it again.
    kept = Path(app.config["STORAGE_DIR"]) / "uploads" / job["id"]
    assert kept_files(kept) == ["000001"] and job["new_kept_until"] > job["finished_at"]
    load = wait_for_job(client, client.post(f"/api/v1/jobs/{job['id']}/add-new", json={"album": "pets"}).json["url"])
    assert (load["kind"], load["source"], load["total"], load["added"]) == ("files", "1 uploaded file", 1, 1)
    listed = client.get("/api/v1/images", query_string={"album": "pets"}).json
    assert sorted(i["filename"] for i in listed) == ["b.jpg", "cat.jpg"]
    assert kept_files(kept) == ["000001"]  # kept still: added again, it is a duplicate
    again = client.post(f"/api/v1/jobs/{job['id']}/add-new", json={"album": "more"}).json
    assert wait_for_job(client, again["url"])["duplicates"] == 1
    # Removed on request, before the retention is over: the check can no longer add them.
    assert client.delete(f"/api/v1/jobs/{job['id']}/kept").status_code == 204 and not kept.exists()
    assert client.get(f"/api/v1/jobs/{job['id']}").json["new_kept_until"] is None
    for refused in (client.delete(f"/api/v1/jobs/{job['id']}/kept"), client.post(f"/api/v1/jobs/{job['id']}/add-new")):
        assert refused.status_code == 409, refused.json
    assert "the check's files were removed on request" in refused.json["message"]
    logged = client.get("/api/v1/activity").json[0]
    assert logged["note"] == f"job {job['id']}: the 1 new file it kept removed"

    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x/near.jpg", near)
        z.writestr("x/rocket.jpg", photos["rocket"])
    data = {"archive": (io.BytesIO(archive.getvalue()), "in.zip"), "check": "1"}
    job = wait_for_job(client, start(client, data=data, content_type="multipart/form-data")["url"])
    found = findings(client, job)
    assert job["kind"] == "check-archive" and found["x/near.jpg"]["verdict"] == "in_library"  # added above
    assert found["x/rocket.jpg"]["verdict"] == "new" and job["new_kept_until"]
    assert "The archive is kept until" in client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert client.get("/api/v1/stats").json["count"] == 3
    load = wait_for_job(client, client.post(f"/api/v1/jobs/{job['id']}/add-new", json={"album": "in"}).json["url"])
    assert (load["kind"], load["source"], load["total"], load["added"]) == ("archive", "in.zip", 1, 1)
    assert [i["album"] for i in client.get("/api/v1/images", query_string={"album": "in"}).json] == ["in/x"]

    # Once the retention is over (WEBAPP_UPLOAD_RETENTION_HOURS after the check ended), they are removed.
    ingestion = app.extensions[EXTENSION].ingestion
    ingestion.limits = replace(ingestion.limits, upload_retention=0)
    assert job["id"] in ingestion.drop_stale_uploads() and not kept.exists()
    gone = client.post(f"/api/v1/jobs/{job['id']}/add-new", json={})
    assert gone.status_code == 409 and "the check's files were removed 0 days after it ended" in gone.json["message"]
    assert client.get(f"/api/v1/jobs/{job['id']}").json["new_kept_until"] is None
    bad = client.post("/api/v1/jobs", json={"folder": "x", "check": "maybe"})
    assert bad.status_code == 422 and "check" in str(bad.json["errors"]), bad.json


def test_the_check_page_starts_a_check_and_its_page_shows_what_it_found(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    cat = add(client, photos["chelsea"], "cat.jpg", "pets")
    add(client, photos["astronaut"], "astronaut.jpg")
    assert 'href="/check"' in client.get("/add").get_data(as_text=True)
    page = client.get("/check").get_data(as_text=True)
    assert "<h1>Check images against the library</h1>" in page and page.count('name="check" value="1"') == 3
    assert "Compare with the album" in page and ">Check folder</button>" in page

    form = {
        "csrf_token": csrf_token(client, "/check"),
        "source": "files",
        "check": "1",
        "files": [
            (io.BytesIO(photos["chelsea"]), "mine.jpg"),
            (io.BytesIO(resaved(photos["astronaut"])), "sent.jpg"),
            (io.BytesIO(photos["rocket"]), "rocket.jpg"),
        ],
    }
    started = client.post("/add", data=form, content_type="multipart/form-data")
    assert started.status_code == 303
    job_id = started.headers["Location"].rsplit("/", 1)[1]
    job = wait_for_job(client, f"/api/v1/jobs/{job_id}")
    assert job["kind"] == "check-files" and client.get("/api/v1/stats").json["count"] == 2

    shown = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Check of uploaded files" in shown and "Found in the library" in shown and "See the library" not in shown
    assert 'data-job-field="compared-in_library">1<' in shown and 'data-job-field="compared-new">1<' in shown
    assert "mine.jpg" in shown and "The same file" in shown and f'href="/images/{cat}"' in shown
    assert "sent.jpg" in shown and "The same picture" in shown
    new = shown[shown.index('id="new-heading"') :]  # the new files, each beside the closest image held
    assert '<td class="wrap">rocket.jpg</td>' in new and "mine.jpg" not in new and "% alike)" in new
    with client.get(f"/jobs/{job_id}/matches.csv") as got:
        rows = list(csv.reader(io.StringIO(got.get_data(as_text=True))))
    assert rows[0][:3] == ["file", "verdict", "reason"]
    by_file = {row[0]: row for row in rows[1:]}
    assert by_file["mine.jpg"][1:2] + by_file["mine.jpg"][3:5] == ["in_library", cat, "cat.jpg"]
    assert by_file["sent.jpg"][1] == "similar" and by_file["sent.jpg"][-1] == "yes"
    assert by_file["rocket.jpg"][1] == "new" and by_file["rocket.jpg"][-1] == "no"
    load = wait_for_job(client, client.post("/api/v1/jobs", data={"files": [(io.BytesIO(b"x"), "x.jpg")]}).json["url"])
    assert client.get(f"/jobs/{load['id']}/matches.csv").status_code == 404
    assert "Add the 1 new file</button>" in shown and "The 1 new file uploaded is kept until" in shown
    added = client.post(f"/jobs/{job_id}/add-new", data={"csrf_token": csrf_token(client, "/check"), "album": "r"})
    assert added.status_code == 303
    load = wait_for_job(client, "/api/v1" + added.headers["Location"])
    assert (load["kind"], load["album"], load["added"]) == ("files", "r", 1)
    assert "Remove the kept file now</button>" in shown
    removed = client.post(f"/jobs/{job_id}/discard-kept", data={"csrf_token": csrf_token(client, "/check")})
    assert removed.status_code == 303
    shown = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "The 1 new file the check kept is removed." in shown and "Add the 1 new file</button>" not in shown
    assert [i["filename"] for i in client.get("/api/v1/images", query_string={"album": "r"}).json] == ["rocket.jpg"]
    listed = client.get("/jobs").get_data(as_text=True)
    assert listed.count("Check of uploaded files") == 1
    assert "1 in the library · 1 the same picture · 1 new</span>" in listed  # what it found, under its name
    bad = client.get(f"/api/v1/jobs/{job_id}/matches", query_string={"verdict": "maybe"})
    assert bad.status_code == 422 and "verdict" in str(bad.json["errors"])
    similar = client.get(f"/api/v1/jobs/{job_id}/matches", query_string={"verdict": "similar"})
    assert [f["name"] for f in similar.json] == ["sent.jpg"] and similar.headers["X-Pagination"]


def test_a_photo_saved_sideways_is_found_by_its_layout_behind_many_closer_look_alikes(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    # To the model the rocket turned a quarter is less like the rocket than 20 crops of itself, so
    # its closest images are all crops: only the layout's second look finds the rocket.
    rocket = add(client, photos["rocket"], "rocket.jpg", "space")
    sideways = Image.open(io.BytesIO(photos["rocket"])).transpose(Image.Transpose.ROTATE_90)
    width, height = sideways.size
    for i in range(20):
        left, top = (i % 5) * width // 20, (i // 5) * height // 16
        add(client, jpeg(sideways.crop((left, top, left + width * 7 // 10, top + height * 7 // 10))), f"crop{i}.jpg")
    sent = jpeg(sideways, quality=60)
    closest = upload_search(client, sent, NEIGHBOURS)
    assert rocket not in closest and len(closest) == NEIGHBOURS  # what the first look sees

    folder = import_folder(app, "phone")
    (folder / "sideways.jpg").write_bytes(sent)
    (folder / "coffee.jpg").write_bytes(photos["coffee"])
    job = wait_for_job(client, start(client, json={"folder": str(folder), "check": True})["url"])
    found = findings(client, job)
    assert found["sideways.jpg"]["verdict"] == "similar", found["sideways.jpg"]
    last = found["sideways.jpg"]["matches"][-1]  # behind the closest, in the last place
    assert last["image_id"] == rocket and last["same_picture"] and 0.5 <= last["score"]
    assert not any(m["same_picture"] for m in found["sideways.jpg"]["matches"][:-1])
    assert found["coffee.jpg"]["verdict"] == "new"
    layouts, deadline = app.extensions[EXTENSION].ingestion.layouts, time.monotonic() + 10
    while layouts.holding is not None and time.monotonic() < deadline:  # its thread forgets them just after
        time.sleep(0.05)
    assert layouts.holding is None  # forgotten once the check ended
    # Narrowed to an album the rocket is not in, the second look does not see it either.
    job = wait_for_job(client, start(client, json={"folder": str(folder), "check": True, "album": "other"})["url"])
    assert findings(client, job)["sideways.jpg"]["verdict"] == "new"


def test_the_chunks_of_one_check_in_a_process_share_the_layouts_read_for_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []

    class Catalogue:  # counts the reads of a library of one image
        def every_fingerprint(self, size: int = 5000, album: str = "") -> Any:
            reads.append(album)
            yield {"a" * 64: to_bytes(fingerprint(Image.new("L", (64, 48)))), "b" * 64: None}

    cache, catalog = checks.LayoutCache(), cast(Catalog, Catalogue())
    first = cache.of("job1", catalog, "trips")
    assert cache.of("job1", catalog, "trips") is first and reads == []  # read only when looked at
    ids, index = first.get()
    assert first.get()[0] is ids and list(ids) == [b"a" * 64] and reads == ["trips"]
    assert cache.of("job2", catalog, "").get() and reads == ["trips", ""]  # another check reads its own
    assert cache.holding == "job2"
    cache.forget("job1")  # not the one kept: nothing changes
    assert cache.of("job2", catalog, "").get() and len(reads) == 2
    cache.forget("job2")
    assert cache.of("job2", catalog, "").get() and len(reads) == 3
    monkeypatch.setattr(checks, "REREAD", -1.0)  # a minute later: read again
    assert cache.of("job2", catalog, "").get() and len(reads) == 4


def test_a_process_lets_a_checks_layouts_go_once_its_chunks_stop_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that ran some chunks of a check, but not its last, never learns that it ended: it
    lets the layouts (224 MB at a million images) go once no chunk asked for them for IDLE seconds."""
    monkeypatch.setattr(checks.LayoutCache, "IDLE", 0.3)
    cache = checks.LayoutCache()
    catalog = cast(Catalog, object())  # never read: nothing here looks at the layouts
    first = cache.of("job1", catalog, "")
    for _ in range(4):  # chunks still asking, for longer than IDLE in all: kept, not made again
        time.sleep(0.15)
        assert cache.of("job1", catalog, "") is first
    last = time.monotonic()
    while cache.holding is not None and time.monotonic() < last + 5:
        time.sleep(0.02)
    assert cache.holding is None and time.monotonic() - last >= 0.3  # let go, not before IDLE
    cache.of("job2", catalog, "")  # a later check: kept again, and let go again
    time.sleep(0.6)
    assert cache.holding is None


def kept_files(folder: Path) -> list[str]:
    """Return the files in a check's folder once at most one is left (its thread removes the others just
    after the check is done)."""
    deadline = time.monotonic() + 10
    while len(names := sorted(p.name for p in folder.iterdir())) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    return names


def upload_search(client: FlaskClient, data: bytes, top_k: int) -> list[str]:
    answer = client.post("/api/v1/search", data={"image": (io.BytesIO(data), "q.jpg"), "top_k": str(top_k)})
    assert answer.status_code == 200, answer.json
    return [hit["id"] for hit in answer.json["results"]]


def test_a_copy_further_than_the_closest_few_is_still_found_and_kept() -> None:
    # Six look-alikes, the copy sixth: as many crops of one photo crowd a library.
    mine = fingerprint(Image.open(io.BytesIO(noise_images(1, seed=3, size=64)[0])))
    others = [fingerprint(Image.open(io.BytesIO(data))) for data in noise_images(5, seed=4, size=64)]
    hits = [(f"{i:064x}", 0.9 - i / 100) for i in range(6)]
    theirs = {sha: print_ for (sha, _), print_ in zip(hits, [*others, mine], strict=True)}
    verdict = _verdict(None, hits, mine, theirs, 0.96)
    assert verdict.state == SIMILAR and len(verdict.matches) == MATCHES
    assert verdict.matches[-1] == (*hits[5], True)
    assert [m[0] for m in verdict.matches[:-1]] == [sha for sha, _ in hits[:4]]
    assert not any(m[2] for m in verdict.matches[:-1])
    alone = _verdict(None, hits[:5], mine, theirs, 0.96)
    assert alone.state == NEW and len(alone.matches) == 5


def test_a_check_stopped_midway_goes_on_when_resumed_and_counts_each_file_once(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    held, fresh = noise_images(3, seed=61), noise_images(3, seed=62)
    ids = [add(client, data, f"held{i}.jpg") for i, data in enumerate(held)]
    folder = import_folder(app, "halfway")
    for i, data in enumerate([*held, *fresh]):
        (folder / f"{i}.jpg").write_bytes(data)
    rt = app.extensions[EXTENSION]
    monkeypatch.setattr(units, "BATCH", 2)
    job = rt.jobs.create("check-folder", str(folder), rt.queue.owner)  # not sent: run here, stopped after a batch
    rt.jobs.set_items(job.id, [f"{i}.jpg" for i in range(6)])
    asked = iter([False, True])
    rt.ingestion.run_chunk(job.id, 0, lambda: next(asked))
    stopped = rt.jobs.get(job.id)
    assert (stopped.status, stopped.processed) == (JobStatus.INTERRUPTED, 2)
    early = client.post(f"/api/v1/jobs/{job.id}/add-new", json={})
    assert early.status_code == 409 and "the check is interrupted: let it finish" in early.json["message"]

    resumed = client.post(f"/api/v1/jobs/{job.id}/resume")
    assert resumed.status_code == 202, resumed.json
    final = wait_for_job(client, resumed.json["url"])
    assert (final["status"], final["processed"], final["failed"]) == ("done", 6, 0)
    assert final["compared"]["in_library"] == 3 and sum(final["compared"].values()) == 6
    found = findings(client, final)
    assert [found[f"{i}.jpg"]["matches"][0]["image_id"] for i in range(3)] == ids
    assert all(len(f["matches"]) == 3 for f in found.values())  # each file's matches written once
    assert client.get("/api/v1/stats").json["count"] == 3
