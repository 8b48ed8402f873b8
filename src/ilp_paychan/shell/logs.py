"""Structured log lines for the operator: readable text, or one JSON object a line.

Events are logged with `log_event(logger, "name", key=value, ...)`; the text form is
`name key=value ...`, the JSON form `{"ts", "level", "logger", "event", ...fields}`. Callers
pass only values that are safe to show (redacted URLs, no secrets): this module never sees
the configuration.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

_FIELDS_ATTR = "ilp_fields"
_EVENT_ATTR = "ilp_event"


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Logs one event with its fields."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join([event, *(f"{key}={_text_value(value)}" for key, value in fields.items())])
    logger.log(level, "%s", text, extra={_EVENT_ATTR: event, _FIELDS_ATTR: fields})


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c.isspace() for c in text)) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per record; exceptions go into `error` as one string."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        event = getattr(record, _EVENT_ATTR, None)
        if event is not None:
            out["event"] = event
            for key, value in getattr(record, _FIELDS_ATTR, {}).items():
                out.setdefault(key, value)
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL LOGGER: message`, with UTC times to the millisecond (as the JSON lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def configure_logging(fmt: LogFormat, level: str = "info", stream: TextIO | None = None) -> None:
    """Routes every logger of the process to one handler on stderr (or `stream`)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # the websockets library logs every handshake failure at INFO with a traceback
    logging.getLogger("websockets").setLevel(max(root.level, logging.WARNING))
