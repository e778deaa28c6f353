"""The activity log resource."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from webapp.api.activity.schemas import NARROWING, ActivityArgsSchema, EntrySchema
from webapp.api.common import Blueprint
from webapp.auth import requires
from webapp.runtime import runtime
from webapp.services.activity import Entry
from webapp.services.roles import Role

blp = Blueprint("activity", __name__, url_prefix="/activity", description="Who changed what, and when.")


@blp.route("")
class ActivityLog(MethodView):
    """The activity log."""

    @blp.arguments(ActivityArgsSchema(), location="query")
    @blp.response(200, EntrySchema(many=True))
    @blp.paginate()
    @requires(Role.ADMIN)
    def get(self, args: dict[str, Any], pagination_parameters: Any) -> list[Entry]:
        """List the requests that changed the library or its accounts, newest first."""
        p = pagination_parameters
        offset, log = (p.page - 1) * p.page_size, runtime().activity
        narrowing = {name: args.get(name) for name in NARROWING}
        entries, p.item_count = log.entries(offset, p.page_size, **narrowing)
        return entries
