"""Structured logs: one JSON object per line, one line per event.

The code logs events in a ``name key=%s key=%s`` style, for example
``log.info("digest_sent digest_id=%s subscriber_id=%s papers=%s", ...)``. The
:class:`JsonFormatter` turns such a record into::

    {"ts": "2025-06-01T07:00:00.123Z", "level": "INFO", "logger": "digest.delivery",
     "event": "digest_sent", "digest_id": 12, "subscriber_id": 3, "papers": 8,
     "message": "digest_sent digest_id=12 subscriber_id=3 papers=8"}

Each ``key=%s`` placeholder takes its value from the record's arguments, so values keep
their type (numbers stay numbers) and may contain spaces. ``%(name)s`` placeholders with
a mapping argument (gunicorn's access log) work the same way, and fields passed with
``extra={...}`` are added as they are. Enabled by ``LOG_FORMAT=json`` (the production
default); see ``LOGGING`` in the settings.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# ``key=%s`` / ``key=%(atom)s``, or an unnamed ``%s``, which still consumes an argument.
# A literal ``%%`` matches too, so that it is not mistaken for a placeholder.
PLACEHOLDER = re.compile(
    r"%%|(?:(?P<key>[A-Za-z_][\w.]*)=)?"
    r"%(?:\((?P<atom>[^)]+)\))?[-#0 +]*\d*(?:\.\d+)?[sdrifgexXo]"
)
EVENT = re.compile(r"^(?P<event>[a-z][a-z0-9_]*)(?:\s|$)")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of ``record``: ``event`` (the leading ``snake_case`` word of
    the message format, when it has ``key=`` placeholders or is a single word) and one
    entry per ``key=%s`` placeholder, valued from ``record.args``. Never raises: a record
    whose arguments do not fit its format yields no placeholder fields."""
    msg = record.msg if isinstance(record.msg, str) else str(record.msg)
    fields: dict[str, Any] = {}
    args = record.args
    placeholders = [m for m in PLACEHOLDER.finditer(msg) if m[0] != "%%"]
    if isinstance(args, Mapping):
        for match in placeholders:
            if match["key"] and match["atom"] in args:
                fields[match["key"]] = args[match["atom"]]
    elif isinstance(args, tuple) and len(args) == len(placeholders):
        for match, value in zip(placeholders, args, strict=True):
            if match["key"] and not match["atom"]:
                fields[match["key"]] = value
    head = EVENT.match(msg)
    if head and (fields or msg.strip() == head["event"]):
        fields = {"event": head["event"], **fields}
    return fields


class JsonFormatter(logging.Formatter):
    """Formats each record as one line of JSON (no newline inside; RFC 8259).

    Keys: ``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, the
    :func:`event_fields`, any ``extra=`` fields, ``message`` (the rendered message) and,
    when an exception is attached, ``exc_info`` (the formatted traceback). Values that
    JSON cannot hold are written with ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            + "Z",
            "level": record.levelname,
            "logger": record.name,
        }
        line.update(event_fields(record))
        for key, value in record.__dict__.items():
            if key not in RECORD_ATTRIBUTES and not key.startswith("_"):
                line.setdefault(key, value)
        line["message"] = message
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        return json.dumps(line, default=str, ensure_ascii=False)
