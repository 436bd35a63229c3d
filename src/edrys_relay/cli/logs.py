"""The log output of ``edrys-relay serve`` on stderr: text lines, or one JSON object per line.

Server code logs with stdlib loggers and puts the structured fields of a record in ``extra``
(``event``, ``conn``, ``door``, ``peer``, ``client``, ``room``, ``code`` ...); room names are
already labels there (``security/redaction.py``). Both formats pass every line through
:func:`~edrys_relay.security.redaction.redact` as a last line of defence against a token in an
exception message. docs/operations.md "Logs" is the schema.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from edrys_relay.security.redaction import redact

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)
"""What every LogRecord has; anything else on a record came from ``extra``."""


class TextFormatter(logging.Formatter):
    """The classic line, with tokens redacted."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, event, logger, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in line and value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, default=str)


def lean_log_records() -> None:
    """Skip what neither format shows: the caller's file and line, thread and process.

    Python's logging docs ("Optimization") name these switches; finding the caller walks the
    stack for every record. They took a fifth of the cost of the one line each connection
    logs when it opens (``bench/connect_cost.py``: 2.3 % of a connection's instructions).
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # documented: "set logging._srcfile to None"


def configure(level: str, log_format: LogFormat) -> None:
    """Send every log record to stderr in ``log_format`` (unless the root logger has handlers)."""
    lean_log_records()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.captureWarnings(True)
    if level.upper() != "DEBUG":
        # websockets' own "connection open/closed" lines carry no connection id; ours do.
        logging.getLogger("websockets.server").setLevel(logging.WARNING)
        # aioice logs every ICE candidate pair check of the bridge's connections
        logging.getLogger("aioice").setLevel(logging.WARNING)


__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure",
    "lean_log_records",
]
