# make run: install, build the model, serve under Gunicorn on 127.0.0.1:8000 (Milvus Lite).
# make test: install, build the model, lint, type-check and run the test suite (browser tests included).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pip byte-compiles what it installs on one core: 89 s of a fresh install, against 28 s without and
# 25 s for compileall on both cores afterwards. torch only exports the model once (make model), and
# one of its test files does not compile on Python 3.11.
PIP_INSTALL := pip install --quiet --no-compile
COMPILE_ALL := -m compileall -q -j 0 -x '/torch/'
# The FP32 model exported into the app's default WEBAPP_MODEL_DIR (var/models).
MODEL ?= efficientnet-lite0
MODEL_FILE := var/models/$(MODEL).onnx
# The INT8 model, made from the FP32 one by make model: what a new library is embedded with when
# WEBAPP_MODEL is unset (webapp/models.py). A library made with FP32 keeps FP32.
INT8_FILE := var/models/efficientnet-lite0-int8.onnx

.PHONY: run test lint worker bench compare bench-latency bench-ingest bench-store load model install install-dev clean

run: install model
	$(BIN)/gunicorn -c gunicorn.conf.py

# The suite runs on TEST_WORKERS pytest-xdist workers; tests/conftest.py keeps every test of the
# Milvus server (fixed ports) on one of them.
TEST_WORKERS ?= 2

# The model's export and the checks run side by side (85 instead of 118 s from a clean clone here).
test: install-dev install-e2e install-servers
	$(MAKE) --no-print-directory -j2 model lint
	$(BIN)/pytest -n $(TEST_WORKERS)

# An ingestion worker (scale-out): WEBAPP_BROKER_URL, WEBAPP_DATABASE_URL, WEBAPP_MILVUS_URI and
# WEBAPP_STORAGE_DIR must name the same services as the web machines' (README: Scale out).
worker: install model
	$(BIN)/flask --app wsgi worker

# Only the browser tests (tests/e2e, also run by make test); screenshots go to artifacts/screenshots/.
.PHONY: e2e install-e2e
e2e: install-dev install-e2e model
	$(BIN)/pytest tests/e2e

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The raw pipeline next to the app under Gunicorn: one table, JSON in bench/results/bench.json.
# Sizes: make bench ARGS="--images 10000 --store-sizes 100000"
bench: install-dev model
	$(BIN)/python bench/run.py $(ARGS)

# Flask + Gunicorn next to the FastAPI + Uvicorn twin (bench/twin.py): same workers, images and load.
compare: install-dev model
	$(BIN)/python bench/compare.py $(ARGS)

# Where a web worker's resident memory goes: model sessions, a bulk batch, Milvus Lite per 1,000 vectors.
.PHONY: bench-memory
bench-memory: install-dev model
	$(BIN)/python bench/memory.py $(ARGS)

# INT8 recipes on this CPU: cosine to FP32 by its own kernels and exactly, and one image's time.
.PHONY: bench-int8
bench-int8: install-dev model
	$(BIN)/python bench/int8_recipes.py $(ARGS)

# A near-duplicate scan of 100,000 synthetic vectors in Milvus Lite (README, Measured).
.PHONY: bench-duplicates
bench-duplicates: install-dev
	$(BIN)/python bench/duplicates.py $(ARGS)

# Fingerprints: bits between copies and distinct photos by band of similarity, and one's cost (README, Near-duplicates).
.PHONY: bench-fingerprints
bench-fingerprints: install-dev model
	$(BIN)/python bench/fingerprints.py $(ARGS)

# The suggested keeper per kind of copy, and what measuring a picture's fill costs (README, Near-duplicates).
.PHONY: bench-keepers
bench-keepers: install-dev
	$(BIN)/python bench/keepers.py $(ARGS)

# The scan's lookup of very close layouts alone, on a million random fingerprints: time and memory.
.PHONY: bench-close-layouts
bench-close-layouts: install-dev
	$(BIN)/python bench/close_layouts.py $(ARGS)

# Pages of text and screenshots of one program: grouped as copies? (README, Near-duplicates).
.PHONY: bench-documents
bench-documents: install-dev model
	$(BIN)/python bench/documents.py $(ARGS)

# Aligned tiles: could aligning two pictures part pages and screenshots from their copies? (tried, not taken)
.PHONY: bench-aligned
bench-aligned: install-dev
	$(BIN)/python bench/aligned.py $(ARGS)

# Milvus Lite search p50, its own code against the app's arrays, by rows waiting and library size.
.PHONY: bench-lite
bench-lite: install-dev
	$(BIN)/python bench/lite_search.py $(ARGS)

# Search p50 of a library grown one upload at a time, against one loaded by jobs (issue: single adds).
.PHONY: bench-single-adds
bench-single-adds: install-dev model
	$(BIN)/python bench/single_adds.py $(ARGS)

# A search during a bulk load against idle, split by step, in alternating rounds (ARGS="--variant WEBAPP_X=1 ...").
.PHONY: bench-during-load
bench-during-load: install-dev model
	$(BIN)/python bench/during_load.py $(ARGS)

# The app under 16 clients against the raw pipeline on all cores, with the server's CPU, in alternating rounds
# (ARGS="--variant WEBAPP_X=1" or "--checkout ../other-worktree").
.PHONY: bench-clients
bench-clients: install-dev model
	$(BIN)/python bench/clients.py $(ARGS)

# Where a search's CPU goes, by library (perf record): the app under 16 clients against the raw pipeline.
.PHONY: bench-cpu
bench-cpu: install-dev model
	$(BIN)/python bench/cpu.py $(ARGS)

# The test suite's Milvus server idle: the CPU it keeps busy by time tick, with its collections loaded.
.PHONY: bench-milvus-idle
bench-milvus-idle: install-dev
	$(BIN)/python bench/milvus_idle.py $(ARGS)

# Bulk ingestion scaled out (PostgreSQL + Redis + Milvus server, 1 and 2 workers) against the embedded default.
.PHONY: bench-scaleout
bench-scaleout: install-dev install-servers model
	$(BIN)/python bench/scaleout.py $(ARGS)

# Warm single-client search latency through Gunicorn on loopback (prints percentiles).
bench-latency: install-dev model
	$(BIN)/python bench/latency.py

# Bulk ingestion through the app next to the raw embedding pipeline, in one run.
bench-ingest: install-dev model
	$(BIN)/python bench/ingest.py

# Milvus search latency at 10k and 100k synthetic vectors, Lite file and real server.
bench-store: install-dev model
	$(BIN)/python bench/store.py

# 16 clients for 30 s mixing searches, uploads and pages while a bulk job runs; fails on any error.
load: install-dev model
	$(BIN)/python bench/load.py

model: $(MODEL_FILE) $(if $(filter efficientnet-lite0,$(MODEL)),$(INT8_FILE))

$(MODEL_FILE): scripts/export_model.py | install
	$(BIN)/python scripts/export_model.py --model $(MODEL) --out $@

# Static quantization, calibrated on scikit-image's bundled photos; refused if it strays from FP32.
$(INT8_FILE): var/models/efficientnet-lite0.onnx scripts/quantize_model.py | install
	$(BIN)/python scripts/quantize_model.py --fp32 $< --out $@

# The alternative model: EfficientNet-Lite2 (260 px input), served with WEBAPP_MODEL=efficientnet-lite2.
.PHONY: model-lite2
model-lite2:
	$(MAKE) model MODEL=efficientnet-lite2

# Retrieval quality of both models on one folder: make evaluate DIR=path [ARGS="--near-duplicates"]
.PHONY: evaluate
evaluate: install model model-lite2
	$(BIN)/flask --app wsgi evaluate $(or $(DIR),$(error set DIR=folder)) --model efficientnet-lite0 $(ARGS)
	$(BIN)/flask --app wsgi evaluate $(DIR) --model efficientnet-lite2 $(ARGS)

install: $(VENV)/.run-installed
install-dev: $(VENV)/.dev-installed .venv-milvus/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) --upgrade pip

# The export step's requirements are installed with the app's: `make run` builds the model.
$(VENV)/.run-installed: requirements.txt requirements-model.txt | $(BIN)/python
	$(BIN)/$(PIP_INSTALL) -r requirements.txt -r requirements-model.txt
	$(BIN)/python $(COMPILE_ALL) $(VENV)/lib
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.run-installed
	$(BIN)/$(PIP_INSTALL) -r requirements-dev.txt
	$(BIN)/python $(COMPILE_ALL) $(VENV)/lib
	touch $@

# A real Milvus standalone for the tests (milvus-server), in its own venv: its pins must not mix
# with the app's. The tests start and stop it themselves.
.venv-milvus/.installed:
	$(PYTHON) -m venv .venv-milvus
	.venv-milvus/bin/$(PIP_INSTALL) milvus==2.3.5
	.venv-milvus/bin/python $(COMPILE_ALL) .venv-milvus/lib
	touch $@

# The browser tests drive Debian's chromium: Playwright cannot download its own browser here (never run
# `playwright install`). axe-core comes from the npm registry, pinned by tests/e2e/package-lock.json.
AXE := tests/e2e/node_modules/axe-core/axe.min.js

# Real PostgreSQL and Redis for the tests, from Debian's packages; the tests start and stop their
# own instances on loopback (tests/servers.py), never the system's services. iproute2 gives one
# test a database host that can be cut off from the network (ip netns); libgs-common, Ghostscript's
# colour profiles alone (no Ghostscript), gives the colour tests a CMYK print profile.
.PHONY: install-servers
install-servers:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v redis-server >/dev/null \
		|| ! command -v ip >/dev/null || [ ! -f /usr/share/color/icc/ghostscript/default_cmyk.icc ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql redis-server iproute2 \
			libgs-common; fi

install-e2e: $(AXE)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

$(AXE): tests/e2e/package.json tests/e2e/package-lock.json
	npm ci --prefix tests/e2e --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) .venv-milvus .pytest_cache .mypy_cache .ruff_cache
