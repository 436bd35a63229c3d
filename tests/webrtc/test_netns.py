"""The namespace made by scripts/netns-pytest is what WebRTC tests rely on, and nothing more."""

from __future__ import annotations

import json
import subprocess


def ip_json(*args: str) -> list[dict[str, object]]:
    out = subprocess.run(["ip", "-json", *args], capture_output=True, text=True, check=True)
    result: list[dict[str, object]] = json.loads(out.stdout)
    return result


def test_namespace_has_only_loopback_and_the_private_veth() -> None:
    # no real interface of the machine is visible here (kernels may add fallback tunnel
    # devices such as sit0 to every namespace; those stay down)
    up = {link["ifname"] for link in ip_json("link", "show") if "UP" in link["flags"]}  # type: ignore[operator]
    assert up == {"lo", "rtc0", "rtc1"}
    addresses = {
        (link["ifname"], info["local"])
        for link in ip_json("-4", "addr", "show")
        for info in link["addr_info"]  # type: ignore[attr-defined]
    }
    assert addresses == {("lo", "127.0.0.1"), ("rtc0", "10.233.0.1")}
    routes = ip_json("-4", "route", "show", "default")
    assert [route.get("dev") for route in routes] == ["rtc0"]
