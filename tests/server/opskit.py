"""Helpers of the operations tests: plain HTTP GETs, parsed ``/metrics``, JSON log files."""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def _get(url: str, headers: dict[str, str], context: ssl.SSLContext | None) -> Reply:
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), _NoRedirect()
    )
    try:
        with opener.open(request, timeout=10) as reply:
            return Reply(reply.status, dict(reply.headers), reply.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


async def http_get(
    url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None
) -> Reply:
    """GET ``url`` without following redirects (in a thread: the server may share our loop)."""
    return await asyncio.to_thread(_get, url, headers or {}, context)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a text exposition, keyed by name and sorted labels (strict parser)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def total(samples: Samples, name: str) -> float:
    """The sum of a metric over all its label values."""
    return sum(v for (n, _), v in samples.items() if n == name)


def json_log(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a ``--log-format json`` log; fails on one that is not JSON."""
    text = path.read_text() if path.exists() else ""
    records = []
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        if not line.endswith("\n"):
            break  # still being written
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"log line {number} is not JSON: {line!r}") from exc
        assert isinstance(record, dict), f"log line {number} is not a JSON object: {line!r}"
        records.append(record)
    return records


def find_event(path: Path, event: str) -> dict[str, Any] | None:
    """The first record of ``event`` in a JSON log, if it is there yet."""
    return next((r for r in json_log(path) if r.get("event") == event), None)


async def wait_for_event(path: Path, event: str, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while (record := find_event(path, event)) is None:
            await asyncio.sleep(0.005)
    return record
