"""Benchmark the ``/stream`` relay: delivered frames per second and frame latency.

One source sends frames at a fixed rate to N viewers through a real ``edrys-relay serve``
process (started here unless ``--url`` points at a running server). Viewers run in separate
processes so that the server's CPU is measured on its own. Latency is receive time minus the
send time stamped in each frame (all processes share the host's wall clock).

    /work/main/.venv/bin/python bench/stream_bench.py --viewers 1,10,50 --fps 15 --kib 50

``--throttled K`` makes K of the viewers read at ``--throttle-kibps``; the table then reports
the other viewers, plus the throttled ones' median frame rate.

Run by hand; results go in docs/stream.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
ROOM = "bench"
PREFIX = '{"type":"frame","t":'


def now_ms() -> float:
    return time.time() * 1000.0


# -- viewers (worker processes) -----------------------------------------------------------------


def viewer_process(
    url: str, count: int, throttled: int, kibps: float, ready: Any, stop: Any, results: Any
) -> None:
    asyncio.run(_viewers(url, count, throttled, kibps, ready, stop, results))


async def _open_viewer(url: str, throttled: bool) -> ClientConnection:
    sock = None
    if throttled:
        # A small receive buffer, so the throttle shows at the server as it would on a slow link.
        port = int(url.split(":")[2].split("/")[0])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.connect(("127.0.0.1", port))
    ws = await connect(
        url, max_size=None, compression=None, open_timeout=30, sock=sock, max_queue=1
    )
    await ws.recv()  # info
    await ws.send(f'{{"type":"join-room","roomId":"{ROOM}"}}')
    return ws


async def _viewers(
    url: str, count: int, throttled: int, kibps: float, ready: Any, stop: Any, results: Any
) -> None:
    conns = [await _open_viewer(url, i < throttled) for i in range(count)]
    latencies: list[list[float]] = [[] for _ in conns]

    async def read(ws: ClientConnection, out: list[float], throttle: bool) -> None:
        async for message in ws:
            arrived = now_ms()
            if isinstance(message, bytes):
                out.append(arrived - struct.unpack_from(">d", message, 8)[0])
            elif message.startswith(PREFIX):
                out.append(arrived - float(message[len(PREFIX) : message.index(",", 20)]))
            if throttle:  # read no faster than kibps
                await asyncio.sleep(len(message) / (kibps * 1024))

    readers = [
        asyncio.create_task(read(ws, out, i < throttled))
        for i, (ws, out) in enumerate(zip(conns, latencies, strict=True))
    ]
    ready.put(count)
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for ws in conns:
        await ws.close()
    results.put([(i < throttled, out) for i, out in enumerate(latencies)])


# -- source -------------------------------------------------------------------------------------


async def run_source(url: str, fps: float, seconds: float, kib: int, binary: bool) -> int:
    image = b"\xff\xd8\xff\xe0" + os.urandom(kib * 1024 * 3 // 4 if not binary else kib * 1024)
    data = "data:image/jpeg;base64," + base64.b64encode(image).decode()
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.recv()
        await ws.send(f'{{"type":"register-source","roomId":"{ROOM}"}}')
        await ws.recv()
        loop = asyncio.get_running_loop()
        started = loop.time()
        frames = int(fps * seconds)
        for seq in range(frames):
            if binary:
                header = struct.pack(">4sB3sd", b"ESF1", 1, b"\0\0\0", now_ms())
                await ws.send(header + image)
            else:
                await ws.send(f'{PREFIX}{now_ms()!r},"seq":{seq},"data":"{data}"}}')
            await asyncio.sleep(max(0.0, started + (seq + 1) / fps - loop.time()))
        return frames


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Result:
    viewers: int
    throttled: int
    throttled_fps: float
    frames: int
    fps_sent: float
    fps_median: float
    fps_min: float
    delivered_pct: float
    p50: float
    p95: float
    p99: float
    worst: float
    server_cpu_pct: float
    server_rss_mib: float
    server_dropped: int | None


def frames_dropped(url: str) -> int | None:
    """The server's count of frames dropped for viewers that were behind (edrys-relay only)."""
    health = url.replace("ws://", "http://").split("/stream")[0] + "/healthz"
    try:
        with urllib.request.urlopen(health, timeout=5) as response:
            return int(json.load(response)["streams"]["frames_dropped"])
    except (OSError, ValueError, KeyError):
        return None


def run_once(
    url: str, server: psutil.Process | None, viewers: int, args: argparse.Namespace
) -> Result:
    ctx = mp.get_context("spawn")
    ready, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    shares = [viewers // args.procs + (i < viewers % args.procs) for i in range(args.procs)]
    slow = [min(n, max(0, args.throttled - sum(shares[:i]))) for i, n in enumerate(shares)]
    view_url = url + ("?binary=1" if args.binary else "")
    procs = [
        ctx.Process(
            target=viewer_process,
            args=(view_url, n, k, args.throttle_kibps, ready, stop, results),
        )
        for n, k in zip(shares, slow, strict=True)
        if n
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=60)
    dropped_before = frames_dropped(url)
    cpu_before = server.cpu_times() if server else None
    started = time.monotonic()
    frames = asyncio.run(run_source(url, args.fps, args.seconds, args.kib, args.binary))
    elapsed = time.monotonic() - started
    cpu_after = server.cpu_times() if server else None
    rss = server.memory_info().rss / 2**20 if server else float("nan")
    time.sleep(args.grace)
    stop.set()
    reports: list[tuple[bool, list[float]]] = []
    for _ in procs:
        reports += results.get(timeout=60)
    for proc in procs:
        proc.join(timeout=30)
    dropped_after = frames_dropped(url)
    per_viewer = [latencies for throttled, latencies in reports if not throttled]
    slow_counts = [len(latencies) for throttled, latencies in reports if throttled]
    counts = [len(v) for v in per_viewer]
    all_latencies = sorted(x for v in per_viewer for x in v)
    cpu = float("nan")
    if cpu_before and cpu_after:
        used = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
        cpu = 100 * used / elapsed

    def pct(q: float) -> float:
        return all_latencies[min(len(all_latencies) - 1, int(q * len(all_latencies)))]

    return Result(
        viewers=len(counts),
        throttled=len(slow_counts),
        throttled_fps=statistics.median(slow_counts) / elapsed if slow_counts else 0.0,
        frames=frames,
        fps_sent=frames / elapsed,
        fps_median=statistics.median(counts) / elapsed,
        fps_min=min(counts) / elapsed,
        delivered_pct=100 * sum(counts) / (frames * len(counts)),
        p50=pct(0.50),
        p95=pct(0.95),
        p99=pct(0.99),
        worst=all_latencies[-1],
        server_cpu_pct=cpu,
        server_rss_mib=rss,
        server_dropped=None
        if dropped_before is None or dropped_after is None
        else dropped_after - dropped_before,
    )


# -- server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "edrys_relay", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server's /stream URL (default: start one)")
    parser.add_argument("--viewers", default="1,10,50", help="comma-separated viewer counts")
    parser.add_argument("--fps", type=float, default=15.0, help="source frame rate")
    parser.add_argument("--kib", type=int, default=50, help="frame message size in KiB")
    parser.add_argument("--seconds", type=float, default=10.0, help="source run time per count")
    parser.add_argument("--procs", type=int, default=2, help="viewer processes")
    parser.add_argument("--binary", action="store_true", help="binary source and viewers")
    parser.add_argument("--grace", type=float, default=1.0, help="wait for stragglers (s)")
    parser.add_argument("--throttled", type=int, default=0, help="viewers reading slowly")
    parser.add_argument(
        "--throttle-kibps", type=float, default=50.0, help="read rate of throttled viewers"
    )
    args = parser.parse_args()

    server_proc = None
    url = args.url
    if url is None:
        server_proc, port = start_server()
        url = f"ws://127.0.0.1:{port}/stream"
    server = psutil.Process(server_proc.pid) if server_proc else None
    mode = "binary" if args.binary else "JSON"
    print(f"# {mode} frames of {args.kib} KiB at {args.fps:g} fps for {args.seconds:g} s, {url}")
    if args.throttled:
        print(f"# of each viewer count, {args.throttled} read at {args.throttle_kibps:g} KiB/s")
    print(
        "| viewers | fps sent | fps/viewer median (min) | delivered | latency p50 / p95 / p99"
        " / max (ms) | server CPU | server RSS | dropped by server |"
    )
    print("|---|---|---|---|---|---|---|---|")
    try:
        for viewers in (int(v) for v in args.viewers.split(",")):
            r = run_once(url, server, viewers, args)
            slow = f" + {r.throttled} throttled ({r.throttled_fps:.1f} fps)" if r.throttled else ""
            print(
                f"| {r.viewers}{slow} | {r.fps_sent:.1f} | {r.fps_median:.1f} ({r.fps_min:.1f}) |"
                f" {r.delivered_pct:.1f} % | {r.p50:.1f} / {r.p95:.1f} / {r.p99:.1f} /"
                f" {r.worst:.1f} | {r.server_cpu_pct:.0f} % | {r.server_rss_mib:.0f} MiB |"
                f" {'-' if r.server_dropped is None else r.server_dropped} |",
                flush=True,
            )
    finally:
        if server_proc is not None:
            server_proc.terminate()
            server_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
