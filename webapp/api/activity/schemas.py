"""What the activity log's entries look like in the API."""

from __future__ import annotations

import marshmallow as ma

from webapp.api.common import ImageId, Moment, Timestamp
from webapp.audit import action

NARROWING = ("actor", "image", "since", "until")  # Activity.entries's keywords, as a query names them


class ActivityArgsSchema(ma.Schema):
    """Which entries to list."""

    actor = ma.fields.String(
        validate=[ma.validate.Length(max=64), ma.validate.Regexp(r"[^\x00]*\Z", error="No name holds a NUL.")],
        metadata={"description": "Only this account's entries (an empty string: those made with access control off)."},
    )
    image = ImageId(
        metadata={
            "description": "Only the entries naming this image (its id in their path or note): when it was added, "
            "moved, deleted, restored."
        }
    )
    since = Moment(
        metadata={"description": "Only the entries written at or after this date, or date and time (UTC unless given)."}
    )
    until = Moment(
        through_day=True,
        metadata={
            "description": "Only the entries written before this date and time; a date alone takes in the whole day."
        },
    )


class EntrySchema(ma.Schema):
    """One request that changed the library or its accounts."""

    id = ma.fields.Integer(metadata={"description": "The entry's number; later entries have higher ones."})
    at = Timestamp(metadata={"description": "When the request was answered (UTC)."})
    actor = ma.fields.String(
        metadata={
            "description": "The account it acted for; empty with access control off. "
            "Of a command: the login that ran it on the machine."
        }
    )
    via = ma.fields.String(
        metadata={
            "description": "session (a browser), token (an API token), open (access control off), "
            "anonymous (a sign-in that was refused) or command (a flask command run on a machine of the library)."
        }
    )
    address = ma.fields.String(
        metadata={"description": "The client's address (after WEBAPP_PROXIES); of a command, the machine's name."}
    )
    method = ma.fields.String(metadata={"description": "The HTTP method; CLI for a command."})
    path = ma.fields.String(
        metadata={"description": "The path, with its query string; of a command, its command line without options."}
    )
    action = ma.fields.Function(
        lambda entry: action(entry.endpoint, entry.method),
        metadata={"type": "string", "description": "What the endpoint does, in words."},
    )
    note = ma.fields.String(metadata={"description": "What this request did, when its view says more than its path."})
    status = ma.fields.Integer(
        metadata={"description": "The HTTP status it was answered with; of a command, its exit status (0: success)."}
    )
    request_id = ma.fields.String(metadata={"description": "Its X-Request-ID, as in the server's log lines."})
