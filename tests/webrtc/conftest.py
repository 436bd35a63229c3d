"""Fixtures for WebRTC tests, and the mechanism that runs them in a private network namespace.

WebRTC needs a non-loopback interface with a default route, and our tests must not use the
machine's real one (docs/testing.md). So every test under ``tests/webrtc`` runs inside a
fresh network namespace made by ``scripts/netns-pytest`` (``unshare -n`` + a veth pair):

* Run as part of any pytest invocation (``pytest``, ``pytest tests/webrtc``, ``-k ...``): each
  collected test here is replaced by a stand-in item that re-runs that one test through
  ``scripts/netns-pytest`` and reports its outcome (pass / fail with the inner output / skip).
* Inside the namespace (``EDRYS_RELAY_NETNS=1``, set by the script) the tests run directly.
* Where no namespace can be made (no root, no veth), the tests are skipped with the reason, unless
  ``CI=true``: then they fail, so CI can never pass without having run them.

Fixtures (usable only inside the namespace): ``relay_server`` (our server on 127.0.0.1, started
as ``python -m edrys_relay serve``; ``start_server`` starts more, with flags and a store),
``page_url`` (an esbuild bundle of the pinned npm yjs + y-webrtc, served over HTTP on
127.0.0.1) and ``browser`` (headless Debian Chromium driven by Playwright).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NETNS_SCRIPT = ROOT / "scripts" / "netns-pytest"
INTEROP = ROOT / "tests" / "interop"
IN_NETNS = os.environ.get("EDRYS_RELAY_NETNS") == "1"
ON_CI = os.environ.get("CI") == "true"
NETNS_UNAVAILABLE = 77  # exit status of scripts/netns-pytest when no namespace can be made

#: Seconds one re-executed test may take (pytest start, server, browsers, ICE); the inner test
#: itself is bounded by the project's pytest-timeout setting (180 s).
INNER_TIMEOUT = 220

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def skip_or_fail(reason: str) -> None:
    """Skip the current test, or fail it under CI=true (where a skip would hide missing setup)."""
    if ON_CI:
        pytest.fail(f"{reason} (CI=true: not skipping)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- re-execution


class NetnsFailure(Exception):
    """The re-executed test failed; carries the inner pytest output."""


class NetnsItem(pytest.Item):
    """Stands in for one test of this directory and runs it inside a fresh network namespace."""

    def __init__(self, *, inner_nodeid: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner_nodeid = inner_nodeid

    def runtest(self) -> None:
        with tempfile.TemporaryDirectory(prefix="netns-pytest-") as tmp:
            report = Path(tmp) / "report.xml"
            env = dict(os.environ, PYTHON=sys.executable)
            env.pop("EDRYS_RELAY_NETNS", None)
            cmd = [
                str(NETNS_SCRIPT),
                "-q",
                "-rs",
                "-p",
                "no:cacheprovider",
                f"--junitxml={report}",
                self.inner_nodeid,
            ]
            # own process group, so a timeout can end everything this run started (and only that)
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                stdout, stderr = proc.communicate(timeout=INNER_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                stdout, stderr = proc.communicate()
                raise NetnsFailure(
                    f"timed out after {INNER_TIMEOUT}s in the network namespace\n{stdout}{stderr}"
                ) from None
            output = stdout + stderr
            if proc.returncode == NETNS_UNAVAILABLE:
                skip_or_fail(
                    "WebRTC tests need a private network namespace (unshare -n + veth, i.e. root): "
                    + stderr.strip()
                )
            outcome, message = _junit_outcome(report)
            if outcome == "skipped":
                # mirrors the inner skip; environment skips inside already fail under CI=true
                pytest.skip(f"inside the network namespace: {message}")
            if outcome != "passed" or proc.returncode != 0:
                raise NetnsFailure(f"exit status {proc.returncode}\n{output}")

    def repr_failure(self, excinfo: Any, style: Any = None) -> str:
        if isinstance(excinfo.value, NetnsFailure):
            return f"[run in a network namespace via scripts/netns-pytest]\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.name} [netns]"


def _junit_outcome(report: Path) -> tuple[str, str]:
    """Return (outcome, message) of the single test case in a junit XML report."""
    try:
        cases = list(ET.parse(report).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        return "missing", "no report"
    if len(cases) != 1:
        return "missing", f"{len(cases)} test cases in report"
    case = cases[0]
    for kind in ("failure", "error"):
        node = case.find(kind)
        if node is not None:
            return "failed", node.get("message", "")
    skipped = case.find("skipped")
    if skipped is not None:
        return "skipped", skipped.get("message", "")
    return "passed", ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Outside the namespace, replace each test of this directory by a re-executing stand-in."""
    if IN_NETNS:
        return
    for i, item in enumerate(items):
        if HERE not in Path(item.path).resolve().parents:
            continue
        stand_in = NetnsItem.from_parent(item.parent, name=item.name, inner_nodeid=item.nodeid)
        stand_in.add_marker(pytest.mark.timeout(INNER_TIMEOUT + 20))
        items[i] = stand_in


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _require_netns() -> None:
    if not IN_NETNS:  # only reachable when someone calls a test function directly
        pytest.fail("tests/webrtc must run inside scripts/netns-pytest")


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the namespace is ours alone)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RelayProcess:
    """A running ``python -m edrys_relay serve`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    command: list[str]
    env: dict[str, str]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Terminate the server (only this process, which the fixture started)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def restart(self) -> None:
        """Stop the server and start it again with the same command, port and data."""
        self.stop()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_for_port(self, timeout=20)


def _wait_for_port(server: RelayProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), 0.5),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen within {timeout}s:\n{server.log()}")


StartServer = Callable[..., RelayProcess]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start our server on 127.0.0.1 inside the namespace, from this checkout's ``src``.

    ``start_server(*flags, store="memory")``; with ``store="sqlite"`` the data lives in the
    test's temporary directory. Every server started is stopped after the test.
    """
    started: list[RelayProcess] = []

    def start(*flags: str, store: str = "memory") -> RelayProcess:
        port = free_port()
        log_path = tmp_path / f"server-{len(started)}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])
        )
        env["PYTHONUNBUFFERED"] = "1"
        env["EDRYS_RELAY_STORE"] = store
        env["EDRYS_RELAY_DATA_DIR"] = str(tmp_path / f"data-{len(started)}")
        cmd = [sys.executable, "-m", "edrys_relay", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), *flags]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = RelayProcess(process, port, log_path, cmd, env)
        started.append(server)
        _wait_for_port(server, timeout=20)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def relay_server(start_server: StartServer) -> RelayProcess:
    """Our server with the default flags and the memory store (signaling only)."""
    return start_server()


def _bundle(out_dir: Path, entry: str = "page_entry.js") -> None:
    esbuild = INTEROP / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        skip_or_fail("needs `npm ci` in tests/interop (esbuild, yjs, y-webrtc)")
    source = (HERE / entry).read_text()
    subprocess.run(
        [
            str(esbuild),
            "--bundle",
            "--format=iife",
            "--platform=browser",
            "--log-level=warning",
            f"--outfile={out_dir / 'bundle.js'}",
        ],
        input=source,
        text=True,
        cwd=INTEROP,  # resolves the pinned packages in tests/interop/node_modules
        check=True,
        timeout=60,
    )
    (out_dir / "index.html").write_text(
        '<!doctype html><meta charset="utf-8"><title>edrys-relay webrtc test</title>'
        '<script src="bundle.js"></script>\n'
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the test page (http://127.0.0.1, a secure context, so WebCrypto works)."""
    out_dir = tmp_path_factory.mktemp("page")
    _bundle(out_dir)
    handler = functools.partial(_QuietHandler, directory=str(out_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def client_page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like ``page_url``, for ``client_page.js`` (y-webrtc and y-websocket, with page controls)."""
    out_dir = tmp_path_factory.mktemp("client_page")
    _bundle(out_dir, "client_page.js")
    handler = functools.partial(_QuietHandler, directory=str(out_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium via Playwright (Playwright cannot download its own browser here)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        skip_or_fail("needs the Python package playwright (pip install -e '.[test]')")
    executable = shutil.which("chromium")
    if executable is None:
        skip_or_fail("needs Debian's chromium (apt-get install -y chromium)")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await asyncio.wait_for(chromium.close(), 30)
