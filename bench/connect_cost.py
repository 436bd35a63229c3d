"""Instructions per new synced connection, counted by callgrind: a connect-cost figure that
does not depend on how busy the machine is.

Runs ``edrys-relay serve`` under ``valgrind --tool=callgrind`` with instrumentation off, lets
``loadgen.mjs``'s connect scenario fill its room (and the server merge it), counts only the
measured phase (N lean clients to one room, each until synced) and prints the user-space
instructions per connection (kernel work is not counted). Two runs of the same code agree to
0.1 %, so a change of a percent is visible on a busy machine. Traffic to 127.0.0.1 only.

    .venv/bin/python bench/connect_cost.py                    # the checkout's src/
    .venv/bin/python bench/connect_cost.py --src /tmp/other/src
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def measure(src: Path, n: int, python: str) -> int:
    """Total instructions of the measured phase."""
    work = Path(tempfile.mkdtemp(prefix="edrys-callgrind-"))
    port = free_port()
    out = work / "callgrind.out"
    log = work / "server.log"
    caps = str(n + 100)
    server = subprocess.Popen(
        [
            *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
            f"--callgrind-out-file={out}",
            *(python, "-m", "edrys_relay", "serve", "--host", "127.0.0.1", "--port", str(port)),
            *("--max-connections", caps, "--max-connections-per-address", caps),
            *("--message-rate", "1e9", "--message-burst", "1000000000"),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(src), "EDRYS_RELAY_DATA_DIR": str(work / "data")},
    )
    cfg = {"kind": "connect", "port": port, "connections": n, "parallel": 20, "edits": 1000}
    loadgen = None
    try:
        wait_for(lambda: "listening on" in log.read_text(errors="replace"), 300, "server")
        loadgen = subprocess.Popen(
            ["node", str(BENCH / "loadgen.mjs"), json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert loadgen.stdin is not None and loadgen.stdout is not None

        def event(name: str) -> dict[str, object]:
            assert loadgen is not None and loadgen.stdout is not None
            for line in loadgen.stdout:
                data: dict[str, object] = json.loads(line)
                if data.get("event") == "error":
                    raise RuntimeError(f"load generator: {data.get('message')}")
                if data.get("event") == name:
                    return data
            raise RuntimeError(f"load generator ended before {name!r}")

        event("ready")
        # The room's 1,000 edits are merged into one record in a thread: not connect cost.
        wait_for(lambda: "compacted" in log.read_text(errors="replace"), 300, "compaction")
        subprocess.run(
            ["callgrind_control", "-i", "on", str(server.pid)], check=True, capture_output=True
        )
        loadgen.stdin.write("go\n")
        loadgen.stdin.flush()
        done = event("done")
        subprocess.run(
            ["callgrind_control", "-i", "off", str(server.pid)], check=True, capture_output=True
        )
        if done.get("failed"):
            raise RuntimeError(f"{done['failed']} connections failed")
        loadgen.stdin.write("quit\n")
        loadgen.stdin.flush()
        loadgen.wait(30)
    finally:
        if loadgen is not None and loadgen.poll() is None:
            loadgen.kill()
        server.terminate()
        server.wait(120)
    totals = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
    if totals is None:
        raise RuntimeError(f"no totals in {out}")
    return int(totals.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=REPO / "src", help="edrys-relay sources")
    parser.add_argument("-n", type=int, default=600, help="connections in the measured phase")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    total = measure(args.src, args.n, args.python)
    print(f"{args.src}: {total / args.n:,.0f} instructions per connection ({args.n} connections)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
