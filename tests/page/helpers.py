"""Helpers for the classroom page tests: a real edrys-relay server, Debian chromium, netns.

WebRTC needs a non-loopback interface (docs/testing.md), so WebRTC tests call
``run_in_netns``: it re-runs the test inside a fresh network namespace (``unshare -n`` +
veth + default route) where nothing can leave the machine, and reports its result.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shlex
import shutil
import socket
import string
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
NETNS_ENV = "EDRYS_RELAY_NETNS"  # set by scripts/netns-pytest inside the namespace
NETNS_SCRIPT = ROOT / "scripts" / "netns-pytest"
NETNS_UNAVAILABLE = 77  # its exit status when no namespace can be made here
NETNS_HOST = "10.233.0.1"  # the namespace's own address (the veth end), not loopback
NETNS_SETUP = (
    "ip link set lo up && ip link add rtc0 type veth peer name rtc1 && "
    f"ip addr add {NETNS_HOST}/24 dev rtc0 && ip link set rtc0 up && ip link set rtc1 up && "
    "ip route add default dev rtc0"
)


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    flags: tuple[str, ...] = (),
) -> Iterator[str]:
    """Run ``python -m edrys_relay serve`` on a free port of ``host``; yield its http URL.

    ``env`` adds environment variables (e.g. ``EDRYS_RELAY_SECRET``), ``flags`` serve flags.
    """
    port = _free_port(host)
    # EDRYS_PAGE_SERVER: another server command to test the page against ({port} is filled in)
    template = os.environ.get("EDRYS_PAGE_SERVER")
    serve = ["serve", "--host", host, "--port", str(port), *flags]
    command = (
        shlex.split(template.format(port=port))
        if template
        else [sys.executable, "-m", "edrys_relay", *serve]
    )
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        # The memory store: page tests need no persistence and leave no database in the checkout.
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT / "src"),
            "EDRYS_RELAY_STORE": "memory",
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_listening(proc, port)
        yield f"http://{host}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until_listening(proc: subprocess.Popen[str], port: int) -> None:
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if str(port) in line or "listening" in line.lower():
            break
    else:
        raise RuntimeError("edrys-relay serve exited early:\n" + "".join(seen))
    stdout = proc.stdout
    # keep draining the output so the server never blocks on a full pipe
    threading.Thread(target=lambda: stdout.read(), daemon=True).start()


@contextlib.contextmanager
def launched_browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    path = shutil.which("chromium")
    if not path:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def run_in_netns(
    request: pytest.FixtureRequest,
    body: Callable[[str, Any], None],
    server_flags: tuple[str, ...] = (),
) -> None:
    """Run ``body(server_url, browser)`` inside a fresh network namespace.

    The server runs with ``server_flags`` added to its command line.

    Outside one, re-run this very test through ``scripts/netns-pytest`` and report its result.
    Where no namespace can be made the test is skipped, except under ``CI=true``: there it fails,
    so CI never passes without having run it.
    """
    if os.environ.get(NETNS_ENV) == "1":
        with running_server(flags=server_flags) as url, launched_browser() as browser:
            body(url, browser)
        return
    result = subprocess.run(
        [str(NETNS_SCRIPT), "-q", "-rs", "-p", "no:cacheprovider", request.node.nodeid],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    if result.returncode == NETNS_UNAVAILABLE:
        message = f"no network namespace for the WebRTC page tests: {output.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if result.returncode == 0 and " skipped" in output and " passed" not in output:
        pytest.skip(f"skipped inside the network namespace:\n{output.strip()}")
    if result.returncode != 0 or " passed" not in output:
        pytest.fail(f"failed inside the network namespace:\n{output}", pytrace=False)


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
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(f"[{name}] {e}"))  # type: ignore[attr-defined]
    page.on("console", lambda m: m.type == "error" and print(f"[{name}] console: {m.text}"))
    page.goto(url)
    page.wait_for_selector("#classroom:not([hidden])")
    return page


def debug(page: Any) -> dict[str, Any]:
    return page.evaluate("edrysPage.session.debugState()")  # type: ignore[no-any-return]


def comm_of(page: Any) -> str:
    # URLSearchParams reads '+' as a space; Edrys-Lite turns it back, so do we
    return page.evaluate(
        "new URLSearchParams(location.hash.slice(1)).get('comm').replace(/ /g, '+')"
    )  # type: ignore[no-any-return]
