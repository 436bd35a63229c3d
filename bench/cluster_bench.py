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
server process (nodes and redis-server) over the measured phase, per delivery, also shown per
process; ``redis`` lists Redis' own time per command (``INFO commandstats``) in the JSON. The
report ends with the targets: throughput and CPU per delivery as cluster/single ratios, and
the latency differences, all from the medians of this one run. Processes are not pinned
(the cluster has more processes than the machine has cores) but run at ``nice -10`` by
default, as bench/run.py's: on a shared machine read wall-clock figures as indicative; the CPU
per delivery is the steadier figure. ``--py-spy DIR`` records every node (from its start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import hiredis
import psutil
import redis as redis_py

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
        self.names: list[str] = []
        self.ports: list[int] = []
        self.redis_port: int | None = None
        self.spies: list[subprocess.Popen[bytes]] = []

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        argv = ["nice", "-n", str(self.args.nice), *argv]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.work)
        self.procs.append(proc)
        self.names.append(log.stem)
        return proc

    async def start(self) -> None:
        limits = ["--max-connections", "20000", "--max-connections-per-address", "20000"]
        limits += ["--message-rate", "1000000", "--message-burst", "1000000"]
        serve = [sys.executable, "-m", "edrys_relay", "serve", "--host=127.0.0.1", *limits]
        serve += self.args.serve_flag
        os.environ["PYTHONPATH"] = str(self.args.src)
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
            self.redis_port = redis_port
            url = f"redis://127.0.0.1:{redis_port}/0"
            for i in range(self.args.nodes):
                port = free_port()
                self._spawn([*serve, f"--port={port}", f"--redis={url}"], self.work / f"n{i}.log")
                self.ports.append(port)
        for port in self.ports:
            await wait_port(port)

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of each server process so far, by log name."""
        cpu = {}
        for name, proc in zip(self.names, self.procs, strict=True):
            times = psutil.Process(proc.pid).cpu_times()
            cpu[name] = times.user + times.system
        return cpu

    def redis_stats(self) -> dict[str, Any]:
        """Redis's own count of calls and microseconds per command (``INFO commandstats``)."""
        if self.redis_port is None:
            return {}
        out = subprocess.run(
            ["redis-cli", "-p", str(self.redis_port), "info", "commandstats"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        stats: dict[str, Any] = {}
        for line in out.splitlines():
            if line.startswith("cmdstat_"):
                name, _, fields = line.partition(":")
                values = dict(f.split("=") for f in fields.split(","))
                stats[name[8:]] = {"calls": int(values["calls"]), "usec": int(values["usec"])}
        return stats

    def reset_redis_stats(self) -> None:
        if self.redis_port is not None:
            subprocess.run(
                ["redis-cli", "-p", str(self.redis_port), "config", "resetstat"],
                capture_output=True,
                timeout=10,
                check=True,
            )

    def start_py_spy(self, out: Path, tag: str) -> None:
        """Record every edrys-relay process of the setup (``--py-spy DIR``)."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        for name, proc in zip(self.names, self.procs, strict=True):
            if name.startswith("redis"):
                continue
            argv = [spy, "record", "--pid", str(proc.pid), "--rate", "200", "--format", "raw"]
            argv += ["--nonblocking", "--output", str(out / f"pyspy-{tag}-{name}.txt")]
            self.spies.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )

    def stop_py_spy(self) -> None:
        for spy in self.spies:
            spy.send_signal(signal.SIGINT)
        for spy in self.spies:
            try:
                spy.wait(timeout=20)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
        self.spies = []

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


async def drive(setup: Setup, cfg: dict[str, Any], spy_dir: Path | None) -> dict[str, Any]:
    full = {**cfg, "port": setup.ports[0], "ports": setup.ports, "tag": setup.kind}
    full["hardDeadlineSeconds"] = RUN_TIMEOUT
    if spy_dir is not None:  # from the start: attaching during the run stalled it at times
        setup.start_py_spy(spy_dir, f"{cfg['kind']}-{setup.kind}")
    loadgen = await asyncio.create_subprocess_exec(
        *("nice", "-n", str(setup.args.nice), "node"),
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
        setup.reset_redis_stats()
        cpu0 = setup.cpu_seconds()
        loadgen.stdin.write(b"go\n")
        done = await event("done")
        cpu1 = setup.cpu_seconds()
        setup.stop_py_spy()
        redis = setup.redis_stats()
        loadgen.stdin.write(b"quit\n")
    finally:
        setup.stop_py_spy()
        with contextlib.suppress(ProcessLookupError):
            loadgen.kill()
        await loadgen.wait()
    delivered = max(1, int(done.get("delivered", 0)))
    by_process = {name: cpu1[name] - cpu0[name] for name in cpu0}
    cpu = sum(by_process.values())
    per_delivery = {name: round(s / delivered * 1e6, 2) for name, s in by_process.items()}
    return {
        **done,
        "server_cpu_s": cpu,
        "cpu_us_per_delivery": cpu / delivered * 1e6,
        "cpu_us_per_delivery_by_process": per_delivery,
        "redis_commandstats": redis,
    }


FIGURES = {
    "latency": [("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("cpu_us_per_delivery", "CPU µs/del")],
    "rooms": [("deliveries_per_s", "deliveries/s"), ("cpu_us_per_delivery", "CPU µs/del")],
}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key] or 0) for r in runs)


def table(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    lines = []
    for name, by_setup in results.items():
        figures = FIGURES[name]
        lines.append(f"\n## {name}\n")
        header = " | ".join(label for _, label in figures)
        lines.append(f"| setup | {header} | CPU µs/del by process | lost+dup+reorder |")
        lines.append("|---" * (len(figures) + 3) + "|")
        medians: dict[str, dict[str, float]] = {}
        for setup, runs in by_setup.items():
            values = {key: median(runs, key) for key, _ in figures}
            medians[setup] = values
            bad = sum(int(r["lost"]) + int(r["duplicated"]) + int(r["reordered"]) for r in runs)
            cells = " | ".join(f"{values[key]:,.2f}" for key, _ in figures)
            names = runs[0]["cpu_us_per_delivery_by_process"]
            split = " · ".join(
                f"{n} {statistics.median(r['cpu_us_per_delivery_by_process'][n] for r in runs):.1f}"
                for n in names
            )
            lines.append(f"| {setup} | {cells} | {split} | {bad} |")
        if {"single", "cluster"} <= medians.keys():
            one, many = medians["single"], medians["cluster"]
            cpu = many["cpu_us_per_delivery"] / one["cpu_us_per_delivery"]
            if name == "latency":
                lines.append(
                    f"\ncluster − single: p50 {many['p50_ms'] - one['p50_ms']:+.2f} ms, "
                    f"p99 {many['p99_ms'] - one['p99_ms']:+.2f} ms (targets ≤ +3, ≤ +10); "
                    f"CPU per delivery {cpu:.2f}×"
                )
            else:
                ratio = many["deliveries_per_s"] / one["deliveries_per_s"]
                lines.append(
                    f"\ncluster / single: throughput {ratio:.2f} (target ≥ 0.80), "
                    f"CPU per delivery {cpu:.2f}×"
                )
    return "\n".join(lines) + "\n"


def versions() -> str:
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    server = redis.split()[2].removeprefix("v=") if redis else "?"
    return f"redis-server {server}, redis-py {redis_py.__version__}, hiredis {hiredis.__version__}"


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
    parser.add_argument("--logs", type=Path, default=None, help="keep server logs in this dir")
    parser.add_argument("--nice", type=int, default=-10, help="niceness of every process")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="edrys_relay to run")
    parser.add_argument(
        "--serve-flag", action="append", default=[], help="one more flag for every server"
    )
    parser.add_argument("--setups", type=lambda v: v.split(","), default=["single", "cluster"])
    parser.add_argument(
        "--py-spy", type=Path, default=None, metavar="DIR", help="record every node into DIR"
    )
    args = parser.parse_args()
    if shutil.which("redis-server") is None or shutil.which("node") is None:
        print("cluster_bench: needs redis-server and node (scripts/setup)", file=sys.stderr)
        return 2
    names = args.scenarios.split(",")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {n: {} for n in names}
    load0 = os.getloadavg()[0]
    for rep in range(args.reps):
        order = args.setups if rep % 2 == 0 else args.setups[::-1]
        for name in names:
            for kind in order:
                with tempfile.TemporaryDirectory(prefix="edrys-cluster-bench-") as tmp:
                    setup = Setup(kind, args, Path(tmp))
                    try:
                        await setup.start()
                        run = await drive(setup, scenario(name, args), args.py_spy)
                    finally:
                        setup.stop()
                        if args.logs is not None:
                            keep = args.logs / f"rep{rep}-{name}-{kind}"
                            skip = shutil.ignore_patterns("data", "redis")
                            shutil.copytree(tmp, keep, ignore=skip)
                results[name].setdefault(kind, []).append(run)
                brief = {k: v for k, v in run.items() if k != "redis_commandstats"}
                print(f"rep {rep} {name} {kind}: {json.dumps(brief)}", flush=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    command = "python bench/cluster_bench.py " + " ".join(sys.argv[1:])
    header = (
        f"# Cluster benchmark {stamp}\n\nCommand: `{command.strip()}`  \n"
        f"{args.nodes} nodes + redis-server (AOF, appendfsync always) vs one process (SQLite); "
        f"{os.cpu_count()} cores, load average {load0:.1f} → {os.getloadavg()[0]:.1f}; "
        f"{args.reps} repetitions (medians); {versions()}\n"
    )
    report = header + table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"{stamp}-{args.label}"
    base.with_suffix(".md").write_text(report)
    base.with_suffix(".json").write_text(
        json.dumps({"args": vars(args), "results": results}, indent=1, default=str)
    )
    print(report)
    print(f"wrote {base}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
