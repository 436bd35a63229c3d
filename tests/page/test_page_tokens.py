"""The classroom page with access control on (issue 17): opened with the link `token` prints."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import ROOT, classroom_id, debug, open_member, running_server, ws_origin
from .test_page import _close, _see_each_other

expect = pytest.importorskip("playwright.sync_api").expect
SECRET = "page-token-secret-0123456789"


@pytest.fixture(scope="module")
def guarded_server() -> Iterator[str]:
    if os.environ.get("EDRYS_PAGE_SERVER"):
        pytest.skip("EDRYS_PAGE_SERVER runs another server, which has no room tokens")
    with running_server(env={"EDRYS_RELAY_SECRET": SECRET}) as url:
        yield url


def token_lines(room: str, server: str) -> dict[str, str]:
    """What a teacher runs: ``edrys-relay token ROOM --server URL``."""
    out = subprocess.run(
        [sys.executable, "-m", "edrys_relay", "token", room, "--server", server],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "EDRYS_RELAY_SECRET": SECRET},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_token_link_in_websocket_mode(guarded_server: str, browser: Any) -> None:
    room = classroom_id()
    lines = token_lines(room, ws_origin(guarded_server))
    url = f"{guarded_server}/?/classroom/{room}{lines['link websocket']}"
    a, b = open_member(browser, url, "Ada"), open_member(browser, url, "Bob")
    try:
        _see_each_other(a, b)
        for page in (a, b):
            assert debug(page)["transport"] == "websocket"
            assert f"{lines['websocket']}/{room}" in page.sockets
            # the settings show what to paste into Edrys-Lite, token included
            expect(page.locator("#ready")).to_have_attribute("open", "")
            expect(page.locator("#ready-ws")).to_have_value(lines["websocket"])
            expect(page.locator("#ready-sig")).to_have_value(lines["signaling"])
            expect(page.locator("#ready-stream")).to_have_value(lines["stream"])
            expect(page.locator("#token-note")).to_contain_text(f"write token for room {room}")
    finally:
        _close(a, b)


def test_plain_link_is_refused_with_access_control_on(guarded_server: str, browser: Any) -> None:
    """The page's own default URLs carry no token: the server refuses it, nothing syncs."""
    room = classroom_id()
    page = open_member(browser, f"{guarded_server}/?/classroom/{room}", "Eve")
    try:
        page.click("label[for=m-websocket]")
        page.wait_for_function("edrysPage.session.stats.websocketDoorOpened >= 3")
        assert debug(page)["status"] != "connected"
        expect(page.locator("#token-note")).to_have_text("")
    finally:
        page.context.close()
