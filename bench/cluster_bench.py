"""Scale-out on Redis against one process, in the same run (issue 15, docs/performance.md).

    .venv/bin/python bench/cluster_bench.py            # both scenarios, 3 repetitions
    .venv/bin/python bench/cluster_bench.py -s latency -r 1

Each repetition starts, for each setup, fresh servers on empty storage:
``single``: one ``edrys-relay serve`` (SQLite); ``cluster``: a redis-server (AOF,
``appendfsync always``) and ``--nodes`` nodes ``serve --redis``. The load generator
(``loadgen.mjs``) puts each room's writer on the first node and its receivers on the others,
so every delivery in the cluster crosses nodes. Scenarios:

- ``latency``: one writer, ``--observers`` receivers, ``--rate`` updates/s (open loop): p50 and
  p99 from the writer's send to each receipt (one clock, the load generator's);
- ``rooms``: ``--rooms`` rooms x 3 clients, closed loop (window 4 per writer): deliveries/s.

Both count lost, duplicated and reordered deliveries. Server CPU is user+system of every
server process (nodes and redis-server) over the measured phase, per delivery. Processes are
not pinned: on a shared 2-core machine read wall-clock figures as indicative; the CPU per
delivery and the ratios taken in one run are the steadier figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RUN_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "latency":
        return {
            "kind": "latency",
            "rooms": 1,
            "clientsPerRoom": args.observers + 1,
            "rate": args.rate,
            "seconds": args.seconds,
        }
    return {
        "kind": "fanout",
        "rooms": args.rooms,
        "clientsPerRoom": 3,
        "window": 4,
        "seconds": args.seconds,
        "maxUpdatesPerWriter": 4000,
    }


class Setup:
    """The servers of one run: one process, or redis-server plus nodes."""

    def __init__(self, kind: str, args: argparse.Namespace, work: Path) -> None:
        self.kind = kind
        self.args = args
        self.work = work
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.work)
        self.procs.append(proc)
        return proc

    async def start(self) -> None:
        limits = ["--max-connections", "20000", "--max-connections-per-address", "20000"]
        limits += ["--message-rate", "1000000", "--message-burst", "1000000"]
        serve = [sys.executable, "-m", "edrys_relay", "serve", "--host=127.0.0.1", *limits]
        env_src = str(ROOT / "src")
        os.environ["PYTHONPATH"] = env_src
        if self.kind == "single":
            port = free_port()
            self._spawn([*serve, f"--port={port}", "--data-dir=data"], self.work / "single.log")
            self.ports = [port]
        else:
            redis_port = free_port()
            redis_dir = self.work / "redis"
            redis_dir.mkdir()
            self._spawn(
                [
                    *("redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"),
                    *("--dir", str(redis_dir), "--appendonly", "yes", "--appendfsync", "always"),
                    *("--save", ""),
                ],
                self.work / "redis.log",
            )
            await wait_port(redis_port)
            url = f"redis://127.0.0.1:{redis_port}/0"
            for i in range(self.args.nodes):
                port = free_port()
                self._spawn([*serve, f"--port={port}", f"--redis={url}"], self.work / f"n{i}.log")
                self.ports.append(port)
        for port in self.ports:
            await wait_port(port)

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.procs:
            times = psutil.Process(proc.pid).cpu_times()
            total += times.user + times.system
        return total

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def drive(setup: Setup, cfg: dict[str, Any]) -> dict[str, Any]:
    full = {**cfg, "port": setup.ports[0], "ports": setup.ports, "tag": setup.kind}
    full["hardDeadlineSeconds"] = RUN_TIMEOUT
    loadgen = await asyncio.create_subprocess_exec(
        "node",
        str(BENCH / "loadgen.mjs"),
        json.dumps(full),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=16 * 1024 * 1024,
    )
    assert loadgen.stdin is not None and loadgen.stdout is not None

    async def event(name: str) -> dict[str, Any]:
        assert loadgen.stdout is not None
        async with asyncio.timeout(RUN_TIMEOUT):
            while True:
                line = await loadgen.stdout.readline()
                if not line:
                    raise RuntimeError(f"load generator ended before {name!r}")
                value: dict[str, Any] = json.loads(line)
                if value.get("event") == "error":
                    raise RuntimeError(f"load generator: {value}")
                if value.get("event") == name:
                    return value

    try:
        await event("ready")
        await asyncio.sleep(0.5)
        cpu0 = setup.cpu_seconds()
        loadgen.stdin.write(b"go\n")
        done = await event("done")
        cpu = setup.cpu_seconds() - cpu0
        loadgen.stdin.write(b"quit\n")
    finally:
        with contextlib.suppress(ProcessLookupError):
            loadgen.kill()
        await loadgen.wait()
    delivered = max(1, int(done.get("delivered", 0)))
    return {**done, "server_cpu_s": cpu, "cpu_us_per_delivery": cpu / delivered * 1e6}


FIGURES = {
    "latency": [("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("cpu_us_per_delivery", "CPU µs/del")],
    "rooms": [("deliveries_per_s", "deliveries/s"), ("cpu_us_per_delivery", "CPU µs/del")],
}


def table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = []
    for name, by_setup in results.items():
        figures = FIGURES[name]
        lines.append(f"\n## {name}\n")
        lines.append(
            "| setup | " + " | ".join(label for _, label in figures) + " | lost+dup+reorder |"
        )
        lines.append("|---" * (len(figures) + 2) + "|")
        medians: dict[str, dict[str, float]] = {}
        for setup, runs in by_setup.items():
            values = {
                key: statistics.median(float(r[key] or 0) for r in runs) for key, _ in figures
            }
            medians[setup] = values
            bad = sum(int(r["lost"]) + int(r["duplicated"]) + int(r["reordered"]) for r in runs)
            cells = " | ".join(f"{values[key]:,.2f}" for key, _ in figures)
            lines.append(f"| {setup} | {cells} | {bad} |")
        if {"single", "cluster"} <= medians.keys():
            one, many = medians["single"], medians["cluster"]
            if name == "latency":
                lines.append(
                    f"\ncluster − single: p50 {many['p50_ms'] - one['p50_ms']:+.2f} ms, "
                    f"p99 {many['p99_ms'] - one['p99_ms']:+.2f} ms (targets ≤ +3, ≤ +10)"
                )
            else:
                ratio = many["deliveries_per_s"] / one["deliveries_per_s"]
                lines.append(f"\ncluster / single throughput: {ratio:.2f} (target ≥ 0.80)")
    return "\n".join(lines) + "\n"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-s", "--scenarios", default="latency,rooms")
    parser.add_argument("-r", "--reps", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--observers", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--label", default="cluster")
    args = parser.parse_args()
    if shutil.which("redis-server") is None or shutil.which("node") is None:
        print("cluster_bench: needs redis-server and node (scripts/setup)", file=sys.stderr)
        return 2
    names = args.scenarios.split(",")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    load0 = os.getloadavg()[0]
    for rep in range(args.reps):
        order = ("single", "cluster") if rep % 2 == 0 else ("cluster", "single")
        for name in names:
            for kind in order:
                with tempfile.TemporaryDirectory(prefix="edrys-cluster-bench-") as tmp:
                    setup = Setup(kind, args, Path(tmp))
                    try:
                        await setup.start()
                        run = await drive(setup, scenario(name, args))
                    finally:
                        setup.stop()
                results[name].setdefault(kind, []).append(run)
                print(f"rep {rep} {name} {kind}: {json.dumps(run)[:300]}", flush=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    command = "python bench/cluster_bench.py " + " ".join(sys.argv[1:])
    header = (
        f"# Cluster benchmark {stamp}\n\nCommand: `{command.strip()}`  \n"
        f"{args.nodes} nodes + redis-server (AOF, appendfsync always) vs one process (SQLite); "
        f"{os.cpu_count()} cores, load average {load0:.1f} → {os.getloadavg()[0]:.1f}; "
        f"{args.reps} repetitions (medians)\n"
    )
    report = header + table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"{stamp}-{args.label}"
    base.with_suffix(".md").write_text(report)
    base.with_suffix(".json").write_text(
        json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=1)
    )
    print(report)
    print(f"wrote {base}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
