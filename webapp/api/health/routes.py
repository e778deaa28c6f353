"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask.views import MethodView

from webapp.api.common import Blueprint
from webapp.api.health.schemas import LivenessSchema, ReadinessSchema
from webapp.auth import public
from webapp.errors import StoreUnavailable, WebappError
from webapp.runtime import runtime

blp = Blueprint("health", __name__, url_prefix="/health", description="Liveness and readiness.")


def check(probe: Callable[[], str]) -> dict[str, Any]:
    """Run one probe; report ok, what it saw or why it failed, and how long it took."""
    start = time.perf_counter()
    try:
        message, ok = probe(), True
    except WebappError as exc:
        message, ok = exc.message, False
    return {"ok": ok, "message": message, "took_ms": (time.perf_counter() - start) * 1000}


@blp.route("")
class Liveness(MethodView):
    """Liveness."""

    @blp.response(200, LivenessSchema)
    @public
    def get(self) -> dict[str, str]:
        """Answer 200 while the process can serve requests (it touches no dependency)."""
        return {"status": "ok"}


@blp.route("/ready")
class Readiness(MethodView):
    """Readiness."""

    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="A dependency is not usable now.")
    @public
    def get(self) -> tuple[dict[str, Any], int]:
        """Check the model, the vector store, the database, the image storage (and the broker) separately."""
        rt = runtime()
        checks = {
            "model": check(lambda: f"{rt.embedder.name} loaded from {rt.embedder.model_path}"),
            "store": check(lambda: f"{rt.vectors.kind} answers: {rt.vectors.count()} images"),
            "database": check(lambda: f"{rt.database.dialect} answers: {sum(rt.jobs.count_by_status().values())} jobs"),
            "storage": check(rt.storage_state),
        }
        if rt.settings["BROKER_URL"]:
            checks["broker"] = check(lambda: _broker(rt.queue_depth()))
        ready = all(c["ok"] for c in checks.values())
        return {"status": "ready" if ready else "unavailable", **checks}, 200 if ready else 503


def _broker(depth: int | None) -> str:
    if depth is None:
        raise StoreUnavailable("the task queue (broker) cannot be reached")
    return f"answers: {depth} units of work waiting"
