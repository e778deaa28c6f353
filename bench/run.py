"""`make bench`: the raw pipeline next to the app under Gunicorn, in one run; prints a table, writes JSON.

Raw, in-process: decode + preprocess + embed (Towhee/ONNX) for single images one at a time, for
single images on every core at once, and in batches; Milvus Lite search alone on the same library.
Through the app (Gunicorn, gunicorn.conf.py, loopback): a bulk folder job, single-client search
latency (in rounds alternating with the raw pipeline's embed of the same queries, timed again
beside them), and closed-loop throughput and latency at 1, 4 and 16 clients; the server's peak memory.
Then the three ratios the targets are about, and a search's latency while a bulk load runs. All of
that for the default model; then the other Lite0 variant (FP32 while INT8 is the default) for
comparison, and INT8's speed-up over FP32. Images are generated from scikit-image's bundled photos
(640 px JPEGs), never downloaded.

    .venv/bin/python bench/run.py [--images 1000] [--seconds 15] [--store-sizes 10000 100000] [--no-compare]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Send, Server, closed_loop, quantiles, search_sender, sequential_searches, sustained  # noqa: E402
from bench.ingest import make_images  # noqa: E402
from webapp.models import DEFAULT, UNBOUND_DEFAULT  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402
from webapp.services.records import Record  # noqa: E402
from webapp.services.vectors import MilvusVectorStore  # noqa: E402

CLIENTS = (1, 4, 16)
APP_THREADS = 8  # gunicorn.conf.py's threads, which the app runs with here
INT8 = "efficientnet-lite0-int8"
FP32 = UNBOUND_DEFAULT  # efficientnet-lite0, which INT8 is quantized from
OTHER = FP32 if DEFAULT != FP32 else INT8  # the Lite0 variant that is not the default, for comparison
TARGETS = {"ingest": 0.80, "search_gap_ms": 3.0, "throughput_16": 0.80}
INT8_TARGETS = {"ingest": 1.8, "throughput_16": 1.6}  # the INT8 app against the FP32 app, same run


def raw(
    model_dir: Path,
    images: list[bytes],
    queries: list[bytes],
    tmp: Path,
    requests_: int,
    seconds: float,
    model: str = DEFAULT,
) -> dict[str, Any]:
    """Measure the pipeline and the store in-process, without the web app (on all cores: for ``seconds``)."""
    embedder = Embedder(model_dir, model)
    list(embedder.embed_many(list(enumerate(images[:32]))))  # warm up
    for query in queries[:8]:
        embedder.embed(query)
    embed_ms = []
    for i in range(requests_):
        t0 = time.perf_counter()
        embedder.embed(queries[i % len(queries)])
        embed_ms.append((time.perf_counter() - t0) * 1000)
    single = 1000 / float(np.mean(embed_ms))
    single_all = sustained(lambda i: embedder.embed(queries[i % len(queries)]), os.cpu_count() or 1, seconds)
    t0 = time.perf_counter()
    rows = list(embedder.embed_many(list(enumerate(images))))
    batch = len(rows) / (time.perf_counter() - t0)
    model_alone = model_only(embedder, images[:64])

    store = MilvusVectorStore(str(tmp / f"raw-{model}.db"), "raw", embedder.dim)
    records = []
    for i, decoded, vector in rows:
        assert vector is not None and not isinstance(decoded, Exception)
        records.append(
            (Record(decoded.sha256, f"{i}.jpg", decoded.width, decoded.height, "bench", decoded.mime, i), vector)
        )
    for start in range(0, len(records), 500):
        store.upsert(records[start : start + 500])
    store.flush()
    time.sleep(5)  # Milvus Lite builds the new segment's HNSW index in the background
    vectors = [embedder.embed(q)[1] for q in queries]
    search_ms = []
    for i in range(requests_):
        t0 = time.perf_counter()
        store.search(vectors[i % len(vectors)], 10)
        search_ms.append((time.perf_counter() - t0) * 1000)
    # The ceiling of a search server before any HTTP: embed and search, with the app's threads.
    embed_and_search = sustained(
        lambda i: store.search(embedder.embed(queries[i % len(queries)])[1], 10), APP_THREADS, seconds
    )
    store.close()
    return {
        "embed_and_search_per_s": embed_and_search,
        "single_images_per_s": single,
        "single_all_cores_images_per_s": single_all,
        "batch_images_per_s": batch,
        "model_only_images_per_s": model_alone,
        "embed_ms": quantiles(embed_ms),
        "search_ms": quantiles(search_ms),
    }


def model_only(embedder: Embedder, images: list[bytes], batch_size: int = 4, rounds: int = 5) -> float:
    """Return images/s of the model alone (no decoding or resizing), in the app's batches, on all cores."""
    from webapp.services.imaging import decode, to_input
    from webapp.services.operators import _batch_session

    size = embedder.spec.input_size
    tensors = np.stack([to_input(decode(data, 10**8, size).image, size) for data in images])
    session = _batch_session(str(embedder.model_path), os.cpu_count() or 1)
    batches = [tensors[i : i + batch_size] for i in range(0, len(tensors), batch_size)]
    session.run(None, {"input": batches[0]})
    t0 = time.perf_counter()
    for _ in range(rounds):
        for batch in batches:
            session.run(None, {"input": batch})
    return rounds * len(tensors) / (time.perf_counter() - t0)


def search_now_and_then(
    send: Send,
    host: str,
    stop: threading.Event,
    out: list[float],
    every: float = 0.5,
) -> None:
    """Search twice a second (``every``), as a person would, until ``stop``; record each latency in ms."""
    conn = http.client.HTTPConnection(host, timeout=120)
    i = 0
    while not stop.wait(every):
        t0 = time.perf_counter()
        if send(conn, i) != 200:
            raise SystemExit("a search failed during the bulk load")
        out.append((time.perf_counter() - t0) * 1000)
        i += 1
    conn.close()


def thumbnail_views(url: str, count: int = 100) -> dict[str, dict[str, float]]:
    """Time GET of ``count`` thumbnails of a bulk-loaded library twice: made at the first view, then stored."""
    session = requests.Session()
    records = session.get(f"{url}/api/v1/images", params={"page_size": count}).json()
    views: dict[str, list[float]] = {"first": [], "later": []}
    for view in views.values():
        for record in records:
            t0 = time.perf_counter()
            if not session.get(f"{url}{record['thumbnail_url']}").ok:
                raise SystemExit(f"a thumbnail failed: {record['thumbnail_url']}")
            view.append((time.perf_counter() - t0) * 1000)
    return {name: quantiles(samples) for name, samples in views.items()}


def write_folder(folder: Path, images: list[bytes]) -> Path:
    """Write the images as JPEG files into a new folder."""
    folder.mkdir(parents=True)
    for i, data in enumerate(images):
        (folder / f"{i:05d}.jpg").write_bytes(data)
    return folder


def bulk_load(url: str, folder: Path) -> tuple[dict[str, Any], list[float]]:
    """Load a folder through the jobs API, polling its progress every 0.1 s; return it and the poll latencies."""
    session = requests.Session()
    job = session.post(f"{url}/api/v1/jobs", json={"folder": str(folder)}).json()
    polls = []
    while True:
        t0 = time.perf_counter()
        state = session.get(f"{url}{job['url']}").json()
        polls.append((time.perf_counter() - t0) * 1000)
        if state["status"] not in ("queued", "running"):
            return state, polls
        time.sleep(0.1)


@contextmanager
def loaded_app(
    tmp: Path, images: list[bytes], queries: list[bytes], model_dir: Path, clients: int, **extra: Any
) -> Iterator[tuple[Server, str, Send]]:
    """Serve the app (Gunicorn) on a library of ``images`` loaded by a folder job, warmed up by
    ``clients`` clients for 3 s; yield it, its host and a search sender; stop it after."""
    folder = write_folder(tmp / "import" / "library", images)
    server = Server(
        "flask", tmp / "data", model_dir, tmp / "server.log", WEBAPP_IMPORT_ROOTS=str(folder.parent), **extra
    )
    try:
        bulk_load(server.url, folder)
        time.sleep(5)  # the job's last flush: let Milvus Lite finish indexing, as for the raw store
        host, send = server.url.removeprefix("http://"), search_sender(queries)
        closed_loop(send, host, clients, 3)  # warm up
        yield server, host, send
    finally:
        server.stop()


def load_while_searched(
    url: str, folder: Path, images: list[bytes], send: Send, every: float = 0.5
) -> tuple[dict[str, Any], list[float], float, list[float]]:
    """Load the images from a new folder while a client searches every ``every`` s.

    Return the job's last state, the progress polls' latencies, the load's rate (images/s) and
    the searches' latencies (ms).
    """
    searches: list[float] = []
    stop = threading.Event()
    searcher = threading.Thread(
        target=search_now_and_then, args=(send, url.removeprefix("http://"), stop, searches, every)
    )
    searcher.start()
    t0 = time.perf_counter()
    try:
        state, polls = bulk_load(url, write_folder(folder, images))
    finally:
        stop.set()
        searcher.join()
    return state, polls, len(images) / (time.perf_counter() - t0), searches


def app(
    kind: str,
    model_dir: Path,
    images: list[bytes],
    queries: list[bytes],
    tmp: Path,
    requests_: int,
    seconds: float,
    later: list[bytes] | None = None,
    model: str = DEFAULT,
) -> dict[str, Any]:
    """Measure the same work through a server on loopback: ``flask`` (Gunicorn) or ``fastapi`` (Uvicorn).

    With ``later``, also load those images at the end and time the progress polls meanwhile.
    """
    folder = write_folder(tmp / kind / model / "import" / "library", images)
    data, log = tmp / kind / model / "data", tmp / f"{kind}-{model}.log"
    server = Server(kind, data, model_dir, log, WEBAPP_IMPORT_ROOTS=str(folder.parent), WEBAPP_MODEL=model)
    try:
        t0 = time.perf_counter()
        state, _ = bulk_load(server.url, folder)
        ingest = len(images) / (time.perf_counter() - t0)
        if state["added"] != len(images):
            raise SystemExit(f"the {kind} job did not add every image: {state}")
        time.sleep(5)  # the job's last flush: let Milvus Lite finish indexing, as for the raw store
        thumbnails = thumbnail_views(server.url) if kind == "flask" else None
        took: list[float] = []
        host = server.url.removeprefix("http://")
        # With the server's own time for each timed search (its answer's took_ms).
        latency, inside, beside = searches_beside_raw(
            search_sender(queries, took=took), host, requests_, queries, model_dir, model, took
        )
        send = search_sender(queries)
        loads = [closed_loop(send, host, clients, seconds).as_dict() for clients in CLIENTS]
        polling = busy = None
        if later:
            state, polls, rate, searches = load_while_searched(server.url, folder.parent / "later", later, send)
            polling = {"images": state["added"], "polls": len(polls), "max": max(polls), **quantiles(polls)}
            busy = {"ingest_images_per_s": rate, "search_ms": quantiles(searches), "searches": len(searches)}
        memory = server.peak_memory_mb()
    finally:
        server.stop()
    return {
        "ingest_images_per_s": ingest,
        "search_ms": quantiles(latency),
        "search_inside_ms": quantiles(inside),
        "raw_embed_beside_ms": quantiles(beside),
        "search_outside_ms": quantiles([total - server for total, server in zip(latency, inside, strict=False)]),
        "load": loads,
        "thumbnail_ms": thumbnails,
        "progress_poll_ms": polling,
        "during_load": busy,
        "peak_memory_mb": memory,
    }


def store_scale(sizes: list[int], queries: int) -> list[dict[str, Any]]:
    """Milvus Lite search latency on synthetic vectors at larger library sizes (bench/store.py)."""
    from bench.store import DIM, fill, latencies

    out = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = MilvusVectorStore(str(Path(tmp) / "scale.db"), "scale", DIM, timeout=600)
        filled = 0
        for size in sizes:
            fill(store, filled, size, rng)
            store.flush()
            time.sleep(5)
            filled = size
            out.append({"vectors": size, "search_ms": quantiles(latencies(store, queries, rng))})
        store.close()
    return out


def searches_beside_raw(
    send: Send,
    host: str,
    requests_: int,
    queries: list[bytes],
    model_dir: Path,
    model: str,
    took: list[float],
    rounds: int = 4,
) -> tuple[list[float], list[float], list[float]]:
    """Time the app's sequential searches and the raw pipeline's embeds of the same queries, in alternating rounds.

    Return the searches' latencies, their answers' ``took_ms`` and the raw embeds' times (ms).
    This machine's speed drifts by up to a third over minutes, and the raw pipeline's embed is
    otherwise timed minutes before the app's searches: side by side, the drift falls on both.
    """
    embedder = Embedder(model_dir, model)
    for query in queries[:8]:
        embedder.embed(query)
    latency: list[float] = []
    inside: list[float] = []
    embeds: list[float] = []
    per = requests_ // rounds
    for round_ in range(rounds):
        took.clear()
        latency += sequential_searches(send, host, per, warmup=8 if round_ == 0 else 1)
        inside += took[-per:]
        for i in range(per):
            t0 = time.perf_counter()
            embedder.embed(queries[i % len(queries)])
            embeds.append((time.perf_counter() - t0) * 1000)
    embedder.close()
    return latency, inside, embeds


def ratios(raw_: dict[str, Any], app_: dict[str, Any]) -> dict[str, float]:
    """Return the three figures the targets are about."""
    raw_p50 = raw_["embed_ms"]["p50"] + raw_["search_ms"]["p50"]
    at_16 = next(load for load in app_["load"] if load["clients"] == 16)
    return {
        "ingest": app_["ingest_images_per_s"] / raw_["batch_images_per_s"],
        "search_gap_ms": app_["search_ms"]["p50"] - raw_p50,
        "search_gap_beside_ms": app_["search_ms"]["p50"]
        - app_["raw_embed_beside_ms"]["p50"]
        - raw_["search_ms"]["p50"],
        "search_p50_ratio": app_["search_ms"]["p50"] / raw_p50,
        "throughput_16": at_16["throughput"] / raw_["single_all_cores_images_per_s"],
        "throughput_16_vs_embed_and_search": at_16["throughput"] / raw_["embed_and_search_per_s"],
    }


def table(result: dict[str, Any]) -> str:
    """Render the results as a plain-text table."""
    r, a, x = result["raw"], result["app"], result["ratios"]
    lines = [
        f"{result['images']} images (640 px JPEGs), {result['cores']} cores, one run, started {result['when']}",
        "",
        f"{'the default model (' + result['model'] + ')':52s} {'value':>12s}",
        f"{'raw: single images, one at a time (images/s)':52s} {r['single_images_per_s']:12.1f}",
        f"{'raw: single images, all cores (images/s)':52s} {r['single_all_cores_images_per_s']:12.1f}",
        f"{'raw: batches (images/s)':52s} {r['batch_images_per_s']:12.1f}",
        f"{'raw: the model alone, batches of 4 (images/s)':52s} {r['model_only_images_per_s']:12.1f}",
        f"{'raw: embed one image p50 (ms)':52s} {r['embed_ms']['p50']:12.1f}",
        f"{'raw: Milvus search p50 / p99 (ms)':52s} {r['search_ms']['p50']:6.1f} / {r['search_ms']['p99']:4.1f}",
        f"{'raw: embed + search, 8 threads (searches/s)':52s} {r['embed_and_search_per_s']:12.1f}",
        f"{'app: bulk folder job (images/s)':52s} {a['ingest_images_per_s']:12.1f}",
        f"{'app: search, one client, p50 / p95 / p99 (ms)':52s} "
        f"{a['search_ms']['p50']:.1f} / {a['search_ms']['p95']:.1f} / {a['search_ms']['p99']:.1f}",
        f"{'app: search, decode + embed + search in the server p50':52s} {a['search_inside_ms']['p50']:12.1f}",
        f"{'app: search, the rest (HTTP, Flask, response) p50':52s} {a['search_outside_ms']['p50']:12.1f}",
    ]
    for load in a["load"]:
        label = f"app: {load['clients']:>2d} clients: req/s, p50 / p95 / p99 ms, errors"
        lines.append(
            f"{label:52s} {load['throughput']:6.1f}, {load['p50']:.0f} / {load['p95']:.0f} / {load['p99']:.0f}, "
            f"{load['errors']}"
        )
    if a.get("thumbnail_ms"):
        first, later = a["thumbnail_ms"]["first"]["p50"], a["thumbnail_ms"]["later"]["p50"]
        lines.append(f"{'app: a thumbnail, first view / later p50 (ms)':52s} {first:6.1f} / {later:4.1f}")
    lines.append(f"{'app: peak server memory (MB, VmHWM, all processes)':52s} {a['peak_memory_mb']:12.0f}")
    for scale in result["store_scale"]:
        label = f"Milvus Lite search at {scale['vectors']:,} synthetic vectors p50 (ms)"
        lines.append(f"{label:52s} {scale['search_ms']['p50']:12.1f}")
    lines += [
        "",
        f"{'ratio':52s} {'value':>12s}  target",
        f"{'app ingestion / raw batches':52s} {x['ingest']:12.2f}  >= {TARGETS['ingest']:.2f}",
        f"{'app search p50 - (raw embed p50 + raw search p50), ms':52s} {x['search_gap_ms']:+12.1f}  <= "
        f"{TARGETS['search_gap_ms']:.0f} ms",
        f"{'  the same, raw embed timed beside the searches':52s} {x['search_gap_beside_ms']:+12.1f}  <= "
        f"{TARGETS['search_gap_ms']:.0f} ms (raw embed p50 {a['raw_embed_beside_ms']['p50']:.1f} ms)",
        f"{'app throughput at 16 clients / raw single on all cores':52s} {x['throughput_16']:12.2f}  >= "
        f"{TARGETS['throughput_16']:.2f}",
        f"{'app throughput at 16 clients / raw embed + search':52s} {x['throughput_16_vs_embed_and_search']:12.2f}"
        "  (reference: what HTTP and Flask cost)",
    ]
    if a.get("during_load"):
        busy = a["during_load"]
        slowed = busy["search_ms"]["p50"] / a["search_ms"]["p50"]
        kept = busy["ingest_images_per_s"] / a["ingest_images_per_s"]
        lines += [
            f"{'app: search p50 during a bulk load (ms; searches, 2 a second)':52s} {busy['search_ms']['p50']:12.1f}"
            f"  ({busy['searches']})",
            f"{'app: bulk load rate while searched (images/s)':52s} {busy['ingest_images_per_s']:12.1f}",
            f"{'search p50 during a load / idle search p50':52s} {slowed:12.2f}  <= 2.00",
            f"{'load rate while searched / load rate alone':52s} {kept:12.2f}  >= 0.90",
        ]
    if result.get("other"):
        lines += other_lines(result["other"])
    return "\n".join(lines)


def other_lines(other: dict[str, Any]) -> list[str]:
    """Render the other model's raw and app figures, and INT8's speed-up over FP32."""
    r, a, x, up = other["raw"], other["app"], other["ratios"], other["speedup"]
    at_16 = next(load for load in a["load"] if load["clients"] == 16)
    variant = "INT8" if other["model"] == INT8 else "FP32"
    return [
        "",
        f"{'for comparison: ' + other['model']:52s} {'value':>12s}  target",
        f"{'raw: embed one image p50 (ms)':52s} {r['embed_ms']['p50']:12.1f}",
        f"{'raw: batches (images/s)':52s} {r['batch_images_per_s']:12.1f}",
        f"{'app: bulk folder job (images/s)':52s} {a['ingest_images_per_s']:12.1f}",
        f"{'app: search, one client, p50 (ms)':52s} {a['search_ms']['p50']:12.1f}",
        f"{'app: 16 clients: req/s, errors':52s} {at_16['throughput']:8.1f}, {at_16['errors']}",
        f"{'app ingestion / raw batches (' + variant + ')':52s} {x['ingest']:12.2f}  >= {TARGETS['ingest']:.2f}",
        f"{'app search p50 - raw p50s, ms (' + variant + ')':52s} {x['search_gap_ms']:+12.1f}  <= "
        f"{TARGETS['search_gap_ms']:.0f}",
        f"{'  the same, raw embed timed beside (' + variant + ')':52s} {x['search_gap_beside_ms']:+12.1f}  <= "
        f"{TARGETS['search_gap_ms']:.0f}",
        f"{'app 16 clients / raw all cores (' + variant + ')':52s} {x['throughput_16']:12.2f}  >= "
        f"{TARGETS['throughput_16']:.2f}",
        f"{'INT8 model alone / FP32 model alone (the ceiling)':52s} {up['model_only']:12.2f}",
        f"{'INT8 raw batches / FP32 raw batches':52s} {up['raw_batches']:12.2f}",
        f"{'INT8 app / FP32 app: ingestion':52s} {up['ingest']:12.2f}  >= {INT8_TARGETS['ingest']:.1f}",
        f"{'INT8 app / FP32 app: 16-client throughput':52s} {up['throughput_16']:12.2f}  >= "
        f"{INT8_TARGETS['throughput_16']:.1f}",
    ]


def speedup(fast: dict[str, Any], slow: dict[str, Any]) -> dict[str, float]:
    """Return how many times faster one app ran than the other, ingesting and at 16 clients."""

    def at_16(app_: dict[str, Any]) -> float:
        return float(next(load for load in app_["load"] if load["clients"] == 16)["throughput"])

    return {
        "ingest": fast["ingest_images_per_s"] / slow["ingest_images_per_s"],
        "throughput_16": at_16(fast) / at_16(slow),
    }


def main() -> None:
    """Run everything and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images in the library (bulk-loaded)")
    parser.add_argument("--requests", type=int, default=200, help="sequential searches for the latencies")
    parser.add_argument("--seconds", type=float, default=15, help="duration of each concurrency level")
    parser.add_argument("--store-sizes", type=int, nargs="*", default=[], help="synthetic store sizes, e.g. 100000")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "bench.json")
    # 3,000 images: about 25 searches during the load (1,500 gave about 12, whose p50 moved by tenths from run to run).
    parser.add_argument("--later", type=int, default=3000, help="images loaded while someone searches (twice a second)")
    parser.add_argument(
        "--compare", action=argparse.BooleanOptionalAction, default=True, help=f"also run {OTHER}, for comparison"
    )
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")  # runs are named by their start
    images = make_images(args.images)
    queries = make_images(32, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        raw_ = raw(args.model_dir, images, queries, Path(tmp), args.requests, args.seconds)
        later = make_images(args.later, seed=9) if args.later else None
        app_ = app("flask", args.model_dir, images, queries, Path(tmp), args.requests, args.seconds, later)
        other = None
        if args.compare:
            raw_o = raw(args.model_dir, images, queries, Path(tmp), args.requests, args.seconds, OTHER)
            app_o = app("flask", args.model_dir, images, queries, Path(tmp), args.requests, args.seconds, model=OTHER)
            (raw8, app8), (raw32, app32) = (
                ((raw_, app_), (raw_o, app_o)) if OTHER == FP32 else ((raw_o, app_o), (raw_, app_))
            )
            up = speedup(app8, app32)
            up["model_only"] = raw8["model_only_images_per_s"] / raw32["model_only_images_per_s"]
            up["raw_batches"] = raw8["batch_images_per_s"] / raw32["batch_images_per_s"]
            other = {"model": OTHER, "raw": raw_o, "app": app_o, "ratios": ratios(raw_o, app_o), "speedup": up}
    result = {
        "when": started,
        "model": DEFAULT,
        "images": args.images,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "raw": raw_,
        "app": app_,
        "store_scale": store_scale(args.store_sizes, args.requests),
    }
    result["ratios"] = ratios(raw_, app_)
    if other is not None:
        result["other"] = other
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
