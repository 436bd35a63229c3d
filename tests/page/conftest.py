"""Fixtures for the classroom page tests: a real edrys-relay server and Debian chromium.

WebRTC needs a non-loopback interface (docs: testing-webrtc.md), so WebRTC tests call
``run_in_netns``: it re-runs the test inside a fresh network namespace (``unshare -n`` +
veth + default route) where nothing can leave the machine, and reports its result.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
NETNS_ENV = "EDRYS_PAGE_IN_NETNS"
NETNS_SETUP = (
    "ip link set lo up && ip link add rtc0 type veth peer name rtc1 && "
    "ip addr add 10.233.0.1/24 dev rtc0 && ip link set rtc0 up && ip link set rtc1 up && "
    "ip route add default dev rtc0"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server() -> Iterator[str]:
    """Run ``python -m edrys_relay serve`` on a free loopback port; yield its http URL."""
    port = _free_port()
    # EDRYS_PAGE_SERVER: another server command to test the page against ({port} is filled in)
    template = os.environ.get("EDRYS_PAGE_SERVER")
    command = (
        shlex.split(template.format(port=port))
        if template
        else [sys.executable, "-m", "edrys_relay", "serve", "--host", "127.0.0.1", "--port", str(port)]
    )
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_listening(proc, port)
        yield f"http://127.0.0.1:{port}"
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


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_browser() as b:
        yield b


def run_in_netns(request: pytest.FixtureRequest, body: Callable[[str, Any], None]) -> None:
    """Run ``body(server_url, browser)`` inside a fresh network namespace."""
    if os.environ.get(NETNS_ENV) == "1":
        with running_server() as url, launched_browser() as browser:
            body(url, browser)
        return
    for tool in ("unshare", "ip"):
        if not shutil.which(tool):
            pytest.skip(f"WebRTC page tests need `{tool}` (util-linux, iproute2)")
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        pytest.skip("`unshare -n` is not permitted here; WebRTC page tests need root")
    nodeid = request.node.nodeid
    cmd = f"{NETNS_SETUP} && exec {sys.executable} -m pytest -q -p no:cacheprovider '{nodeid}'"
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", cmd],
        cwd=ROOT,
        env={**os.environ, NETNS_ENV: "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or " passed" not in output:
        pytest.fail(f"failed inside the network namespace:\n{output}", pytrace=False)
