"""The deploy/ recipes, run for real: our own nginx from ``deploy/nginx/edrys-relay.conf`` in
front of the relay started with the systemd unit's ``ExecStart``, driven by the stock
y-websocket and signaling clients over wss from several local addresses (docs/operations.md).

Per-address limits count the client's real address through ``--trusted-proxy`` (and a
client-written ``X-Forwarded-For`` changes nothing); without the flag every client is nginx.
The unit's stop signal drains through nginx: clients get 1012 and reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from edrys_relay.config import Settings
from edrys_relay.storage.writer import StoreWriter
from tests.interop.deploykit import (
    SITE,
    UNIT,
    Nginx,
    free_port,
    render_site,
    require_tool,
    unit_flags,
    unit_service,
)
from tests.interop.node_agent import NodeAgent
from tests.server.opskit import http_get, json_log, parse_metrics, value
from tests.server.relayproc import RelayProcess
from tests.tlsca import make_test_pki

ROOM = "Chemie-9a-Titration-x4"
TOKEN = "v1.deadbeef.not-a-real-token-b7c6"
METRICS_TOKEN = "scrape-token-0123456789"


@dataclass
class Deployment:
    nginx: Nginx
    relay_port: int
    https: str
    wss: str
    http: str
    tls: ssl.SSLContext
    ca_file: Path
    tmp: Path

    def relay(self, *extra: str, drop: tuple[str, ...] = ()) -> RelayProcess:
        (self.tmp / "relay").mkdir(exist_ok=True)
        data = self.tmp / "relay" / "data"
        flags = unit_flags(port=self.relay_port, data_dir=data, drop=drop)
        return RelayProcess(self.relay_port, data, *flags, *extra)

    async def agent(self) -> NodeAgent:
        ca = {"NODE_EXTRA_CA_CERTS": str(self.ca_file)}
        return await NodeAgent.start("js/ops_agent.mjs", env=ca)


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    pki = make_test_pki(tmp_path / "pki")
    relay_port, http_port, https_port = free_port(), free_port(), free_port()
    (tmp_path / "nginx").mkdir()
    site = render_site(
        relay_port=relay_port,
        http_port=http_port,
        https_port=https_port,
        cert=pki.cert_file,
        key=pki.key_file,
        logs=tmp_path / "nginx",
    )
    nginx = Nginx(tmp_path / "nginx", site, https_port)
    await nginx.start()
    tls = ssl.create_default_context(cafile=str(pki.ca_file))
    try:
        yield Deployment(
            nginx,
            relay_port,
            f"https://127.0.0.1:{https_port}",
            f"wss://127.0.0.1:{https_port}",
            f"http://127.0.0.1:{http_port}",
            tls,
            pki.ca_file,
            tmp_path,
        )
    finally:
        await nginx.stop()
    logged = nginx.log_text()
    assert "[crit]" not in logged and "[emerg]" not in logged, logged
    assert ROOM not in logged and "not-a-real-token" not in logged, "nginx logged a secret"


def opened(relay: RelayProcess) -> list[dict[str, Any]]:
    log = relay.data_dir.parent / f"server-{relay.starts}.log"
    return [r for r in json_log(log) if r["event"] in ("connection.open", "connection.shed")]


async def yjs_client(agent: NodeAgent, d: Deployment, name: str, address: str, **kw: Any) -> None:
    await agent.call("open_yjs", name=name, url=d.wss, room=ROOM, localAddress=address, **kw)


async def synced(agent: NodeAgent, *names: str) -> None:
    for name in names:
        await agent.until("yjs_stats", lambda s: s["synced"] and s["connected"], name=name)


async def signaling_pair(agent: NodeAgent, d: Deployment, address: str) -> None:
    for name, path in (("s1", "/"), ("s2", "/signaling")):
        await agent.call("open_signaling", name=name, url=d.wss + path, localAddress=address)


async def publish_until_heard(agent: NodeAgent, data: str) -> None:
    """Subscribe s1 and s2 to the room's topic; s1 publishes until s2 has heard it."""
    for name in ("s1", "s2"):
        await agent.until("signal_stats", lambda s: s["connected"], name=name)
        await agent.call("signal_send", name=name, message={"type": "subscribe", "topics": [ROOM]})
    message = {"type": "publish", "topic": ROOM, "data": data}
    for _ in range(100):  # s2's subscription may be processed after s1's first publish
        await agent.call("signal_send", name="s1", message=message)
        await asyncio.sleep(0.05)
        if data in (await agent.call("signal_stats", name="s2"))["received"]:
            return
    raise AssertionError(f"s2 never heard {data!r}")


async def test_every_door_through_nginx_with_real_client_addresses(deployment: Deployment) -> None:
    d = deployment
    relay = d.relay("--max-connections-per-address=2", f"--metrics-token={METRICS_TOKEN}")
    await relay.start()
    agent = await d.agent()
    try:
        await yjs_client(agent, d, "a", "127.0.0.2", params={"token": TOKEN})
        await yjs_client(agent, d, "b", "127.0.0.3")
        await synced(agent, "a", "b")
        await agent.call("text_insert", name="a", text="through nginx")
        await agent.until("text_get", "through nginx", name="b")
        # a client-written X-Forwarded-For is ignored: nginx appends the real address
        await yjs_client(agent, d, "c", "127.0.0.2", headers={"X-Forwarded-For": "127.0.0.9"})
        await synced(agent, "c")
        await yjs_client(agent, d, "over", "127.0.0.2")  # a third from 127.0.0.2: shed
        await agent.until("yjs_stats", lambda s: 1013 in s["codes"], name="over")
        await agent.call("close", name="over")

        await signaling_pair(agent, d, "127.0.0.4")
        await publish_until_heard(agent, "offer through nginx")
        viewer_from = ("127.0.0.5", 0)
        async with connect(
            f"{d.wss}/stream", ssl=d.tls, compression=None, local_addr=viewer_from
        ) as viewer:
            assert '"type":"info"' in str(await viewer.recv())

            assert (await http_get(f"{d.https}/metrics", context=d.tls)).status == 401
            reply = await http_get(
                f"{d.https}/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}, d.tls
            )
            assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
            samples = parse_metrics(reply.body.decode())
            assert value(samples, "edrys_relay_connections", door="yjs") == 3
            assert value(samples, "edrys_relay_connections", door="signaling") == 2
            assert value(samples, "edrys_relay_connections", door="stream") == 1
            assert value(samples, "edrys_relay_refusals_total", reason="capacity") >= 1
        health = await http_get(f"{d.https}/healthz", context=d.tls)
        assert health.status == 200 and b'"status":"ok"' in health.body
        redirect = await http_get(f"{d.http}/{ROOM}")
        assert redirect.status == 301 and redirect.headers["Location"].startswith("https://")
    finally:
        await agent.close()
        assert await relay.signal(signal.SIGTERM) == 0

    records = opened(relay)
    assert all(r["peer"].startswith("127.0.0.1:") for r in records)  # every TCP peer is nginx
    yjs = [r["client"] for r in records if r["door"] == "yjs"]
    assert yjs[:3] == ["127.0.0.2", "127.0.0.3", "127.0.0.2"]
    shed = [r for r in records if r["event"] == "connection.shed"]
    assert shed and {r["client"] for r in shed} == {"127.0.0.2"}
    others = {r["door"]: r["client"] for r in records if r["door"] != "yjs"}
    assert others == {"signaling": "127.0.0.4", "stream": "127.0.0.5"}


async def test_without_trusted_proxy_every_client_is_nginx(deployment: Deployment) -> None:
    d = deployment
    relay = d.relay("--max-connections-per-address=2", drop=("--trusted-proxy",))
    await relay.start()
    agent = await d.agent()
    try:
        await yjs_client(agent, d, "a", "127.0.0.2")
        await yjs_client(agent, d, "b", "127.0.0.3")
        await synced(agent, "a", "b")
        await yjs_client(agent, d, "c", "127.0.0.4", headers={"X-Forwarded-For": "127.0.0.9"})
        await agent.until("yjs_stats", lambda s: 1013 in s["codes"], name="c")
    finally:
        await agent.close()
        assert await relay.signal(signal.SIGTERM) == 0
    assert {r["client"] for r in opened(relay)} == {"127.0.0.1"}


async def test_unit_stop_drains_through_nginx_and_clients_reconnect(
    deployment: Deployment, record_property: Any
) -> None:
    d = deployment
    service = unit_service()
    flags = unit_flags(port=d.relay_port, data_dir=d.tmp)
    close_timeout = float(flags[flags.index("--close-timeout") + 1])
    store_close = StoreWriter.__init__.__kwdefaults__["close_timeout_seconds"]
    (stop_timeout,) = service["TimeoutStopSec"]
    assert float(stop_timeout) > close_timeout + store_close  # systemd never kills a drain
    (kill_signal,) = service["KillSignal"]

    relay = d.relay()
    await relay.start()
    agent = await d.agent()
    try:
        await yjs_client(agent, d, "a", "127.0.0.2")
        await yjs_client(agent, d, "b", "127.0.0.3")
        await signaling_pair(agent, d, "127.0.0.4")
        await synced(agent, "a", "b")
        await agent.call("text_insert", name="a", text="before restart")
        await agent.until("text_get", "before restart", name="b")
        await publish_until_heard(agent, "before")

        assert await relay.signal(getattr(signal, kill_signal)) == 0
        for name in ("a", "b"):  # the close frame passed through nginx
            await agent.until("yjs_stats", lambda s: 1012 in s["codes"], name=name)
        log = relay.data_dir.parent / f"server-{relay.starts}.log"
        drained = next(r for r in json_log(log) if r["event"] == "server.drained")
        assert drained["connections"] == 4 and drained["aborted"] == 0
        for phase in ("seconds", "flush_seconds", "close_seconds"):
            record_property(f"drain_{phase}", drained[phase])
        print(f"drain through nginx: {drained['message']}")

        await relay.start()  # what systemd's restart does next
        await synced(agent, "a", "b")
        for name in ("a", "b"):
            await agent.until("yjs_stats", lambda s: s["connects"] == 2, name=name)
        await agent.call("text_insert", name="b", text=", after")
        await agent.until("text_get", "before restart, after", name="a")
        for name in ("s1", "s2"):
            await agent.until("signal_stats", lambda s: s["connects"] == 2, name=name)
        await publish_until_heard(agent, "after")
    finally:
        await agent.close()
        if relay.proc is not None and relay.proc.returncode is None:
            assert await relay.signal(signal.SIGTERM) == 0


def test_site_timeouts_outlast_the_relays_keepalive() -> None:
    """nginx must never close a quiet classroom first: the relay's pings keep it busy."""
    units = {"s": 1, "m": 60, "h": 3600}
    site = SITE.read_text()
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        (setting,) = re.findall(rf"^\s*{directive} (\d+)([smh]);", site, re.MULTILINE)
        seconds = int(setting[0]) * units[setting[1]]
        assert seconds >= 4 * Settings().ping_interval, (directive, seconds)


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd itself reads the unit: no unknown key, no value it cannot parse."""
    analyze = require_tool("systemd-analyze", "systemd")
    (exec_start,) = unit_service()["ExecStart"]
    binary = exec_start.split()[0]
    stub = tmp_path / "edrys-relay"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(binary, str(stub)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
