"""CPU and latency of the WebRTC bridge (``serve --bridge-webrtc``), in a private network namespace.

Re-runs itself inside ``unshare -n`` with a veth pair (as ``scripts/netns-pytest``; needs root),
starts ``edrys-relay serve --bridge-webrtc`` (SQLite store in a temp dir) pinned to CPU 0, and
drives it from this process, pinned to CPU 1, with ``--peers`` Python WebRTC peers (aiortc,
Edrys framing, password ``password``) that connect to the server only (they join one by one
with ``max_conns=1``: a star, no peer-to-peer links; ``--mesh``: to each other too, as y-webrtc
peers do, so the server also receives every update again from the peers that pass it on) and
one WebSocket member (the Python client):

1. idle: the server's CPU with no peer, then with the peers bridged (per peer, % of a core);
2. join: the server's CPU to bring the peers in (per peer: ICE, DTLS, SCTP, sync);
3. fan-out: one WebRTC peer appends ``--updates`` characters at ``--rate`` per second; the
   server's CPU per update, relayed to the other peers' channels and the WebSocket member,
   less the idle CPU of the same time; then the same from the WebSocket member;
4. latency: WebRTC writer to WebSocket member, for every update of step 3 (both clients in
   this process, one clock).

Every receiver must get every update, or the run fails. Traffic stays inside the namespace.

    sudo .venv/bin/python bench/bridge_bench.py --peers 10 --updates 400 --rate 40

Writes ``bench/results/<UTC stamp>-bridge[-label].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pycrdt

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NETNS_SETUP = (
    "ip link set lo up && ip link add rtc0 type veth peer name rtc1 && "
    "ip addr add 10.233.0.1/24 dev rtc0 && ip link set rtc0 up && ip link set rtc1 up && "
    "ip route add default dev rtc0"
)
TIMEOUT = 60.0


def reexec_in_netns() -> None:
    """Run this script again inside a fresh network namespace (and never return)."""
    env = dict(os.environ, EDRYS_RELAY_NETNS="1")
    script = NETNS_SETUP + ' && exec "$0" "$@"'
    argv = ["unshare", "-n", "--", "bash", "-c", script, sys.executable, __file__, *sys.argv[1:]]
    os.execvpe("unshare", argv, env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid``, in nanosecond resolution (``/proc/.../schedstat``).

    ``times()`` counts in clock ticks (10 ms), too coarse for an idle peer's cost.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


async def until(condition: Any, what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not await condition():
            await asyncio.sleep(0.05)


class Server:
    def __init__(self, data_dir: str) -> None:
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), EDRYS_RELAY_DATA_DIR=data_dir)
        cmd = ["taskset", "-c", "0", sys.executable, "-m", "edrys_relay", "serve"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--bridge-webrtc"]
        cmd += ["--log-level", "warning"]
        self.popen = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
        self.pid = self.popen.pid  # taskset execs the server: the same process

    async def started(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the server did not start")

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class Phases:
    """The measured phases of one run, against one server."""

    def __init__(self, args: argparse.Namespace, server: Server) -> None:
        self.args = args
        self.server = server
        self.idle = 0.0
        """Server CPU seconds per second of the current set of clients doing nothing."""

    async def idle_cpu(self) -> float:
        before = self.server.cpu()
        await asyncio.sleep(self.args.idle_seconds)
        self.idle = (self.server.cpu() - before) / self.args.idle_seconds
        return self.idle

    async def fan_out(
        self, text: pycrdt.Text, receivers: list[pycrdt.Text], latency_of: pycrdt.Text | None
    ) -> tuple[float, list[float]]:
        """Append ``--updates`` characters to ``text`` at ``--rate``; wait until every receiver
        has them. Returns the server's CPU µs per update above idle, and the latencies (ms)
        to ``latency_of``."""
        args = self.args
        offset = len(text)
        sent_at: dict[int, float] = {}
        received_at: dict[int, float] = {}
        if latency_of is not None:
            watched = latency_of

            def on_change(_: Any) -> None:
                received_at.setdefault(len(watched), time.perf_counter())

            subscription = watched.observe(on_change)
        before = self.server.cpu()
        started = time.perf_counter()
        for i in range(args.updates):
            await asyncio.sleep(max(0.0, started + i / args.rate - time.perf_counter()))
            text.insert(len(text), "x")
            sent_at[offset + i + 1] = time.perf_counter()
        total = offset + args.updates

        async def delivered() -> bool:
            return all(len(receiver) == total for receiver in receivers)

        await until(delivered, "every update at every receiver")
        elapsed = time.perf_counter() - started
        cpu = self.server.cpu() - before - self.idle * elapsed
        latencies = []
        if latency_of is not None:
            latency_of.unobserve(subscription)
            latencies = [1000 * (received_at[n] - sent_at[n]) for n in sent_at]
        return 1e6 * cpu / args.updates, latencies


async def measure(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    from edrys_relay.client import Classroom, ClientOptions

    url = f"ws://127.0.0.1:{server.port}"
    room = "Bench" + os.urandom(6).hex()
    result: dict[str, Any] = {
        "peers": args.peers,
        "topology": "mesh" if args.mesh else "star",
        "framing": args.framing,
        "updates": args.updates,
        "rate": args.rate,
    }
    phases = Phases(args, server)
    result["idle_cpu_no_client_pct"] = 100 * await phases.idle_cpu()

    # a star: each peer, with max_conns=1, connects to the bridge (which joined first) and then
    # ignores the announces of the peers after it, whom the bridge offers to; a mesh: every
    # peer also connects to every other and passes each update on to the bridge (gossip)
    max_conns = 20 if args.mesh else 1
    options = ClientOptions(max_conns=max_conns, framing=args.framing, connect_timeout=TIMEOUT)
    async with AsyncExitStack() as stack:
        ws = await stack.enter_async_context(Classroom(url, room, transport="websocket"))
        async with asyncio.timeout(TIMEOUT):
            await ws.wait_synced()
        ws_text = ws.doc.get("t", type=pycrdt.Text)
        idle_ws = await phases.idle_cpu()
        base, _ = await phases.fan_out(ws_text, [], None)
        result["cpu_us_per_update_no_channel"] = base

        peers: list[Classroom] = []

        async def all_bridged() -> bool:
            bridged = (await asyncio.to_thread(health, server.port))["bridge"]["peers"]
            return bridged == len(peers) and all(p.synced.is_set() for p in peers)

        before = server.cpu()
        for _ in range(args.peers):
            peer = Classroom(url, room, transport="webrtc", options=options)
            peers.append(await stack.enter_async_context(peer))
            await until(all_bridged, "the peer bridged")
        result["join_cpu_ms_per_peer"] = 1000 * (server.cpu() - before) / args.peers
        texts = [peer.doc.get("t", type=pycrdt.Text) for peer in peers]

        async def synced() -> bool:
            return all(len(text) == len(ws_text) for text in texts)

        await until(synced, "the peers have the document")
        await asyncio.sleep(2)  # let the joins' last messages settle
        idle_n = await phases.idle_cpu()
        result["idle_cpu_per_peer_pct"] = 100 * (idle_n - idle_ws) / args.peers

        from_rtc, latency = await phases.fan_out(texts[0], [*texts[1:], ws_text], ws_text)
        from_ws, _ = await phases.fan_out(ws_text, texts, None)
    result["cpu_us_per_update_from_webrtc"] = from_rtc
    result["cpu_us_per_update_from_websocket"] = from_ws
    result["cpu_us_per_channel_per_update"] = (from_ws - base) / args.peers
    latency.sort()
    result["latency_webrtc_to_ws_ms"] = {
        "p50": statistics.median(latency),
        "p95": latency[int(0.95 * (len(latency) - 1))],
        "p99": latency[int(0.99 * (len(latency) - 1))],
        "n": len(latency),
    }
    result["machine_load_1min"] = os.getloadavg()[0]
    return result


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    lat = result["latency_webrtc_to_ws_ms"]
    n = result["peers"]
    rows = [
        ("server CPU, idle, no client", f"{result['idle_cpu_no_client_pct']:.2f} % of a core"),
        ("server CPU per bridged peer, idle", f"{result['idle_cpu_per_peer_pct']:.3f} % of a core"),
        (
            "server CPU per peer joining (ICE, DTLS, SCTP, sync)",
            f"{result['join_cpu_ms_per_peer']:.1f} ms",
        ),
        (
            "server CPU per update, WebSocket member alone",
            f"{result['cpu_us_per_update_no_channel']:.0f} µs",
        ),
        (
            f"server CPU per update, WebRTC peer → {n - 1} channels + 1 WebSocket",
            f"{result['cpu_us_per_update_from_webrtc']:.0f} µs",
        ),
        (
            f"server CPU per update, WebSocket member → {n} channels",
            f"{result['cpu_us_per_update_from_websocket']:.0f} µs",
        ),
        (
            "server CPU per update and channel (previous row less the alone one, / peers)",
            f"{result['cpu_us_per_channel_per_update']:.0f} µs",
        ),
        (
            "latency WebRTC peer → WebSocket member (p50 / p95 / p99)",
            f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f} ms (n={lat['n']})",
        ),
    ]
    lines = [
        f"# bridge_bench: {n} peers ({result['topology']}, {args.framing} framing), "
        f"{result['updates']} updates at {result['rate']:g}/s",
        "",
        f"1-minute load average at the end: {result['machine_load_1min']:.2f}",
        "",
        "| measure | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=10)
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--rate", type=float, default=40.0, help="updates per second")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--framing", choices=["edrys", "plain"], default="edrys")
    parser.add_argument(
        "--mesh", action="store_true", help="peers also connect to each other (y-webrtc's usual)"
    )
    parser.add_argument("--label", default="")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    if os.environ.get("EDRYS_RELAY_NETNS") != "1":
        reexec_in_netns()
    os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as data_dir:
        server = Server(data_dir)
        try:
            asyncio.run(server.started())
            result = asyncio.run(measure(args, server))
        finally:
            server.stop()
    text = report(result, args)
    print(text)
    if not args.no_save:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"{stamp}-bridge" + (f"-{args.label}" if args.label else "")
        (BENCH / "results" / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (BENCH / "results" / f"{name}.md").write_text(text)
        print(f"written: bench/results/{name}.json, .md")


if __name__ == "__main__":
    main()
