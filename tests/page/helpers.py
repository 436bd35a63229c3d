"""Small helpers shared by the page tests."""

from __future__ import annotations

import json
import random
import string
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
WAIT_MS = 20_000


def classroom_id() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=16))


def edrys_comm(short: dict[str, Any]) -> str:
    """Encode a config the way Edrys-Lite does: npm lz-string over JSON.stringify."""
    script = (
        "const LZ = require('lz-string');"
        "process.stdout.write(LZ.compressToEncodedURIComponent(process.argv[1]))"
    )
    text = json.dumps(short, separators=(",", ":"))
    out = subprocess.run(
        ["node", "-e", script, text], cwd=ROOT / "web", capture_output=True, text=True, check=True
    )
    return out.stdout


def edrys_decode(comm: str) -> Any:
    script = (
        "const LZ = require('lz-string');"
        "process.stdout.write(LZ.decompressFromEncodedURIComponent(process.argv[1]))"
    )
    out = subprocess.run(
        ["node", "-e", script, comm], cwd=ROOT / "web", capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def ws_origin(base: str) -> str:
    return "ws://" + urlsplit(base).netloc


def open_member(browser: Any, url: str, name: str, *, auto_timeout_ms: int | None = None) -> Any:
    """A fresh browser context (its own storage, no shared BroadcastChannel) on ``url``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    if auto_timeout_ms is not None:
        context.add_init_script(f"window.edrysAutoTimeoutMs = {auto_timeout_ms}")
    context.add_init_script(f"localStorage.setItem('edrys-relay-name', {json.dumps(name)})")
    page = context.new_page()
    page.sockets = []  # type: ignore[attr-defined]
    page.on("websocket", lambda ws: page.sockets.append(ws.url))  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: print(f"[{name}] page error: {e}"))
    page.on("console", lambda m: m.type == "error" and print(f"[{name}] console: {m.text}"))
    page.goto(url)
    page.wait_for_selector("#classroom:not([hidden])")
    return page


def debug(page: Any) -> dict[str, Any]:
    return page.evaluate("edrysPage.session.debugState()")  # type: ignore[no-any-return]


def comm_of(page: Any) -> str:
    return page.evaluate("new URLSearchParams(location.hash.slice(1)).get('comm')")  # type: ignore[no-any-return]
