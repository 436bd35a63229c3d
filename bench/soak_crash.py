"""Long kill -9 soak: the crash test of tests/server/test_crash.py, many more times.

Usage: python bench/soak_crash.py [--kills N] [--seed S] [--compact-updates K]

A writer streams tokens, an observer that never writes records what the server relays, the
server is SIGKILLed at random moments (docs/threats.md F1 asks for >= 200) and restarted; at the
end every observed token must be in the document a fresh client receives, exactly once.
Exits 1 and prints the seed on a failure. Only the server processes this script starts are
signalled.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import pycrdt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.server.relayproc import RelayProcess, free_port  # noqa: E402
from tests.server.test_crash import (  # noqa: E402
    ROOM,
    fetch_tokens,
    observe,
    wait_until,
    write_tokens,
)


async def soak(kills: int, seed: int, compact_updates: int, data: Path) -> int:
    rng = random.Random(seed)
    proc = RelayProcess(free_port(), data / "data", f"--compact-updates={compact_updates}")
    url = f"{proc.url}/{ROOM}"
    observed: pycrdt.Doc[Any] = pycrdt.Doc()
    seen = observed.get("log", type=pycrdt.Array)
    stop = asyncio.Event()
    sent = [0]
    try:
        await proc.start()
        writer = asyncio.create_task(write_tokens(url, stop, sent))
        observer = asyncio.create_task(observe(url, observed))
        for kill in range(1, kills + 1):
            before = len(seen)
            await wait_until(lambda b=before: len(seen) > b, timeout=30)
            await asyncio.sleep(rng.uniform(0.02, 1.0))
            await proc.kill()
            await proc.start()
            if kill % 10 == 0:
                print(f"{kill} kills, {len(seen)} tokens observed, {sent[0]} sent", flush=True)
        stop.set()
        await asyncio.wait_for(writer, timeout=10)
        observer.cancel()
        await asyncio.gather(observer, return_exceptions=True)
        tokens = [str(t) for t in seen]
        await proc.kill()
        await proc.start()
        final = await fetch_tokens(url)
    finally:
        await proc.stop()
    missing = set(tokens) - set(final)
    duplicated = len(final) - len(set(final))
    print(f"seed {seed}: {kills} kills, {len(tokens)} observed, {len(final)} in the document")
    if missing or duplicated:
        print(f"FAIL: {len(missing)} observed tokens lost, {duplicated} duplicated")
        return 1
    print("OK: every observed token survived, none duplicated")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=random.randrange(2**32))
    parser.add_argument("--compact-updates", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(soak(args.kills, args.seed, args.compact_updates, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
