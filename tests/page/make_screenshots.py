"""Make the page screenshots in docs/ (run as root: it uses a network namespace for WebRTC).

python tests/page/make_screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

sys.path.insert(0, str(Path(__file__).parent))

from helpers import (
    NETNS_ENV,
    NETNS_SETUP,
    ROOT,
    classroom_id,
    edrys_comm,
    launched_browser,
    open_member,
    running_server,
    ws_origin,
)

DOCS = ROOT / "docs"
NOTES = (
    "Lab 3: oscilloscope\n\n"
    "- Station 2 streams the scope screen\n"
    "- Groups write their readings below\n\n"
    "Group A: 2.4 kHz, 1.2 Vpp\n"
)


def _fill_classroom(a, b) -> None:  # type: ignore[no-untyped-def]
    for page in (a, b):
        page.wait_for_function("document.querySelectorAll('#members li').length >= 2")
    a.fill("#notes", NOTES)
    chat = ((a, "Hello everyone, the scope is on station 2."), (b, "Thanks, we see it."))
    for page, text in chat:
        page.fill("#chat-input", text)
        page.press("#chat-input", "Enter")
    b.wait_for_function("document.querySelectorAll('#chat li').length >= 2")
    b.click("#stream-test")
    a.click("#stream-toggle")
    try:
        a.wait_for_function("edrysPage.viewer.state === 'live'", timeout=5000)
    except PlaywrightTimeout:
        print("note: no live /stream on this server; the stream panel shows its empty state")
    a.wait_for_timeout(1500)


def shoot(server: str, browser) -> None:  # type: ignore[no-untyped-def]
    origin = ws_origin(server)
    for mode, short in (
        ("webrtc", {"m": "WebRTC", "w": origin, "s": [origin]}),
        ("websocket", {"m": "Websocket", "w": origin}),
    ):
        url = f"{server}/?/classroom/{classroom_id()}#comm={edrys_comm(short)}"
        a, b = open_member(browser, url, "Ada Lovelace"), open_member(browser, url, "Bob")
        _fill_classroom(a, b)
        ready = "edrysPage.session.stats.peers >= 1 && edrysPage.session.stats.rttMs !== null"
        a.wait_for_function(ready, timeout=15000)
        a.wait_for_timeout(1200)  # one more panel refresh
        if mode == "webrtc":
            a.click("#check-button")
            done = "document.querySelector('#check-recommendation').textContent"
            a.wait_for_function(done, timeout=20000)
            a.locator("#check-title").locator("..").screenshot(path=DOCS / "page-check.png")
        a.screenshot(path=DOCS / f"page-{mode}.png", full_page=True)
        if mode == "websocket":
            size = {"width": 390, "height": 844}
            phone = browser.new_context(viewport=size, device_scale_factor=2)
            p = phone.new_page()
            p.goto(a.url)
            p.wait_for_function("document.querySelectorAll('#members li').length >= 3")
            p.wait_for_timeout(500)
            p.screenshot(path=DOCS / "page-phone.png")
            phone.close()
        a.context.close()
        b.context.close()


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    if os.environ.get(NETNS_ENV) == "1":
        with running_server() as server, launched_browser() as browser:
            shoot(server, browser)
        return
    cmd = f"{NETNS_SETUP} && exec {sys.executable} {Path(__file__).resolve()}"
    env = {**os.environ, NETNS_ENV: "1"}
    subprocess.run(["unshare", "-n", "sh", "-c", cmd], env=env, check=True)


if __name__ == "__main__":
    main()
