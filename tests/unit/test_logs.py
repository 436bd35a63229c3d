"""The log formats of ``serve`` (docs/operations.md "Logs"): the JSON schema and redaction."""

from __future__ import annotations

import json
import logging
import sys

from edrys_relay.cli.logs import JsonFormatter, TextFormatter

TOKEN = "v1.0123abcd.eyJleHAiOjF9.c2lnbmF0dXJlLXZhbHVl"


def record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"bad token={TOKEN}")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord(
        "edrys_relay.server.app", logging.INFO, "app.py", 1, msg, args, exc_info
    )
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_json_lines_carry_the_schema_and_the_extra_fields() -> None:
    line = JsonFormatter().format(
        record(
            "%s open yjs room=%s",
            "c7",
            "#3fa2c1d9e0b4",
            event="connection.open",
            conn="c7",
            door="yjs",
            peer="127.0.0.1:5000",
            client="192.0.2.7",
            room="#3fa2c1d9e0b4",
            read_only=False,
            code=None,
        )
    )
    assert "\n" not in line
    value = json.loads(line)
    assert value.pop("time").endswith("Z")
    assert value == {
        "level": "info",
        "event": "connection.open",
        "logger": "edrys_relay.server.app",
        "message": "c7 open yjs room=#3fa2c1d9e0b4",
        "conn": "c7",
        "door": "yjs",
        "peer": "127.0.0.1:5000",
        "client": "192.0.2.7",
        "room": "#3fa2c1d9e0b4",
        "read_only": False,
    }  # None fields are left out


def test_json_lines_without_an_event_and_with_an_exception() -> None:
    value = json.loads(JsonFormatter().format(record("GET /?token=%s", TOKEN, exc=True)))
    assert value["event"] == "log"
    assert value["message"] == "GET /?token=…"
    assert "ValueError: bad token=…" in value["exception"]
    assert TOKEN not in json.dumps(value)


def test_text_lines_are_redacted_too() -> None:
    formatter = TextFormatter()
    line = formatter.format(record("refused /x?token=%s", TOKEN, exc=True))
    assert TOKEN not in line and "token=…" in line and " INFO edrys_relay.server.app: " in line
