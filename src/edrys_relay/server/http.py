"""Plain HTTP on the shared port: the classroom page, health, and Edrys' ``okay`` fallback.

(``/metrics`` is answered in ``server/app.py`` with ``server/metrics.py``, without CORS headers:
it is for a scraper, not for pages.)

Edrys' Node server answers any plain request with ``200 okay`` and permissive CORS headers,
and ``OPTIONS`` with 204 (protocols.md §2.8); we keep that for everything not routed here.
Static files are loaded from the package once at start-up and looked up by exact path, so
no request path ever reaches the filesystem.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass
from importlib import resources
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

CORS_HEADERS = (
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "Content-Type"),
)

_REASONS = {
    200: "OK",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


def response(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    extra: tuple[tuple[str, str], ...] = (),
    *,
    cors: bool = True,
) -> Response:
    headers = Headers(CORS_HEADERS if cors else ())
    if status != 204:
        headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(body))
    for name, value in extra:
        headers[name] = value
    return Response(status, _REASONS.get(status, "Unknown"), headers, body)


def json_response(status: int, value: Any) -> Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    return response(status, body, "application/json")


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


class StaticFiles:
    """The built classroom page, held in memory."""

    def __init__(self, files: dict[str, StaticFile]) -> None:
        self._files = files

    @classmethod
    def from_package(cls) -> StaticFiles:
        root = resources.files("edrys_relay") / "web" / "static"
        files: dict[str, StaticFile] = {}
        if root.is_dir():
            cls._collect(root, "", files)
        return cls(files)

    @classmethod
    def _collect(cls, folder: Any, prefix: str, files: dict[str, StaticFile]) -> None:
        for entry in folder.iterdir():
            path = f"{prefix}/{entry.name}"
            if entry.is_dir():
                cls._collect(entry, path, files)
                continue
            body = entry.read_bytes()
            content_type = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or content_type.endswith(
                ("javascript", "json", "svg+xml")
            ):
                content_type += "; charset=utf-8"
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            files[path] = StaticFile(body, content_type, etag)

    def lookup(self, path: str) -> StaticFile | None:
        if path == "/":
            path = "/index.html"
        return self._files.get(path)

    def __len__(self) -> int:
        return len(self._files)


def serve_static(request: Request, found: StaticFile) -> Response:
    if request.headers.get("If-None-Match") == found.etag:
        return response(304, extra=(("ETag", found.etag),))
    cache = "no-cache"
    return response(
        200,
        found.body,
        found.content_type,
        (("ETag", found.etag), ("Cache-Control", cache), ("X-Content-Type-Options", "nosniff")),
    )


def plain_http(request: Request) -> Response:
    """What Edrys' server answers to a request nobody else serves."""
    if request.method == "OPTIONS":
        return response(204)
    return response(200, b"okay")


__all__ = [
    "CORS_HEADERS",
    "StaticFile",
    "StaticFiles",
    "json_response",
    "plain_http",
    "response",
    "serve_static",
]
