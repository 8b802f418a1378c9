"""One log line format for Django, gunicorn and Celery: JSON lines or readable text.

Everything logs through the standard library (`logging.getLogger(__name__)`, Django's, axes',
Celery's and gunicorn's own loggers); structlog's `ProcessorFormatter` turns each record into
one line. `LOG_FORMAT=json` (the default with STOREFRONT_ENV=production) writes one JSON object
per line for Loki or Elasticsearch; `LOG_FORMAT=text` (the default elsewhere, `make run`) writes
the same fields as `key=value` after a readable message. docs/logging.md lists the fields.

Every line carries the request id (and the user id once known) of the request or Celery task
it was logged in: storefront/ops/request_id.py keeps them in context variables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LOG_FORMATS = ("json", "text")
# Extra record attribute holding a dict of fields to log as they are (the gunicorn access log
# passes method, path, status ... this way): logger.info(msg, extra={FIELDS_ATTRIBUTE: {...}}).
FIELDS_ATTRIBUTE = "log_fields"


def log_format_from_environ(environ: Mapping[str, str]) -> str:
    """LOG_FORMAT, or its default: json with STOREFRONT_ENV=production, text elsewhere.

    Raises ValueError naming the variable when it is set to anything else.
    """
    value = (environ.get("LOG_FORMAT") or "").strip().lower()
    if not value:
        return "json" if environ.get("STOREFRONT_ENV") == "production" else "text"
    if value not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be json or text, not {environ.get('LOG_FORMAT')!r}")
    return value


def _add_record_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The logger name, the process id and the fields passed in `extra={"log_fields": {...}}`."""
    record: logging.LogRecord | None = event_dict.get("_record")
    if record is None:
        event_dict.setdefault("pid", os.getpid())
        return event_dict
    event_dict["logger"] = record.name
    event_dict["pid"] = record.process
    fields = getattr(record, FIELDS_ATTRIBUTE, None)
    if isinstance(fields, dict):
        event_dict.update(fields)
    return event_dict


def _add_user_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The signed-in user of the current request, when the request has looked it up."""
    # Imported here: settings.py imports this module, before Django can load request_id's.
    from storefront.ops.request_id import current_user_id

    if "user_id" not in event_dict:
        user_id = current_user_id()
        if user_id is not None:
            event_dict["user_id"] = user_id
    return event_dict


# The first keys of a JSON line, in this order; the others follow as they came.
LEADING_KEYS = ("time", "level", "logger", "message", "request_id", "user_id")


def _drop_empty_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return {key: value for key, value in event_dict.items() if value is not None}


def _leading_keys_first(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    ordered = {key: event_dict.pop(key) for key in LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def shared_processors() -> list[Processor]:
    """What every line gets, whoever logged it: time, level, logger, pid, ids in context."""
    return [
        structlog.contextvars.merge_contextvars,
        _add_user_id,
        structlog.stdlib.add_log_level,
        _add_record_fields,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]


def renderer_processors(log_format: str) -> list[Processor]:
    """The last steps: JSON with `message` and a string `exception`, or readable text."""
    if log_format == "json":
        return [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_empty_fields,
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            _leading_keys_first,
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ]
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _drop_empty_fields,
        structlog.dev.ConsoleRenderer(
            colors=False,
            pad_event_to=0,
            timestamp_key="time",
            exception_formatter=structlog.dev.plain_traceback,
            sort_keys=False,
        ),
    ]


def formatter(log_format: str = "text") -> logging.Formatter:
    """A logging.Formatter for LOGGING's `formatters` ({"()": ..., "log_format": "json"})."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be json or text, not {log_format!r}")
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(),
        processors=renderer_processors(log_format),
    )


def fields(**values: Any) -> dict[str, dict[str, Any]]:
    """`extra=` for a stdlib logging call whose fields should appear as they are."""
    return {FIELDS_ATTRIBUTE: values}
