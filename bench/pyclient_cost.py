"""Could the load generator be Python? CPU per received message of Python websockets clients.

Starts ``edrys-relay serve`` on CPU 0, runs one writer and ``--receivers`` receivers
(websockets asyncio clients, this process, CPU 1) in a closed loop for ``--seconds``, and
prints this process's CPU time per delivered message, to set beside the Node load
generator's ``loadgen_cpu_s / delivered`` in the fan-out runs. Traffic to 127.0.0.1 only.

    python bench/pyclient_cost.py --receivers 99 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pycrdt
from websockets.asyncio.client import ClientConnection, connect

BENCH = Path(__file__).resolve().parent


def updates(count: int) -> list[bytes]:
    """``count`` one-character appends, framed as y-websocket sync updates."""
    doc = pycrdt.Doc()
    out: list[bytes] = []
    doc.observe(lambda event: out.append(bytes(event.update)))
    text = doc.get("t", type=pycrdt.Text)
    for i in range(count):
        text += chr(97 + i % 26)
    return [b"\x00\x02" + _var_uint(len(u)) + u for u in out]


def _var_uint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


async def run(port: int, receivers: int, seconds: float, window: int) -> None:
    url = f"ws://127.0.0.1:{port}/pyclient"
    frames = updates(200_000)
    received = [0] * receivers
    done = asyncio.Event()
    stop_at = float("inf")

    async def receive(i: int, ws: ClientConnection) -> None:
        async for message in ws:
            if isinstance(message, bytes) and message[:2] == b"\x00\x02":
                received[i] += 1
                if done.is_set():
                    return

    conns = [await connect(url, compression=None) for _ in range(receivers + 1)]
    for ws in conns:
        await ws.recv()  # sync step 1
    writer, readers = conns[0], conns[1:]
    tasks = [asyncio.create_task(receive(i, ws)) for i, ws in enumerate(readers)]
    proc = psutil.Process()
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    stop_at = t0 + seconds
    sent = 0
    while time.monotonic() < stop_at and sent < len(frames):
        while sent < len(frames) and sent - min(received) < window:
            await writer.send(frames[sent])
            sent += 1
        await asyncio.sleep(0)
    deadline = time.monotonic() + 10
    while min(received) < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - t0
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    delivered = sum(received)
    done.set()
    for task in tasks:
        task.cancel()
    for ws in conns:
        await ws.close()
    rate = delivered / elapsed
    print(
        f"python clients: {delivered} deliveries in {elapsed:.1f} s ({rate:,.0f}/s), "
        f"client CPU {cpu:.2f} s = {cpu / delivered * 1e6:.2f} µs per delivery"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receivers", type=int, default=99)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--port", type=int, default=47999)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    server = subprocess.Popen(
        [
            *("taskset", "-c", "0", sys.executable, "-m", "edrys_relay", "serve"),
            *("--host", "127.0.0.1", "--port", str(args.port), "--log-level", "warning"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert server.stdout is not None
        deadline = time.monotonic() + 20
        while b"listening on" not in server.stdout.readline():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start")
        asyncio.run(run(args.port, args.receivers, args.seconds, args.window))
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
