"""The update codec against yjs 13.6.27 running in node (``js/yupdate_oracle.mjs``).

One node process serves the whole module (JSON lines over stdin/stdout). Random concurrent edit
traces come from a seeded generator in JS (text with emoji, maps with nested JSON objects whose
keys are not in alphabetical order, arrays, nested Y.Map/Y.Array/Y.Text, formatting, embeds,
deletions, syncs, and snapshots that overlap the incremental updates).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edrys_relay.protocol.yupdate import (
    diff_update,
    encode_state_vector,
    merge_updates,
    parse_update,
    state_vector_from_update,
)
from tests.unit.yupdate_reference import random_state_vector, random_update

HERE = Path(__file__).parent

ORACLE = HERE / "js" / "yupdate_oracle.mjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (HERE / "node_modules" / "yjs").is_dir(),
    reason="node and tests/interop/node_modules are needed (cd tests/interop && npm ci)",
)


class Oracle:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(ORACLE)],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __call__(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert reply["ok"], reply.get("error")
        return reply

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def js() -> Iterator[Oracle]:
    oracle = Oracle()
    yield oracle
    oracle.close()


def _hex(updates: list[bytes]) -> list[str]:
    return [u.hex() for u in updates]


TRACE_SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@TRACE_SETTINGS
@given(seed=st.integers(0, 2**31 - 1), steps=st.sampled_from([20, 80, 160]))
def test_random_traces_match_yjs_byte_for_byte(js: Oracle, seed: int, steps: int) -> None:
    trace = js(op="trace", seed=seed, steps=steps)
    updates = [bytes.fromhex(u) for u in trace["updates"]]
    rng = random.Random(seed)

    # (1) merge: byte-identical to Y.mergeUpdates, whatever the input order (order decides
    # which of two overlapping copies of a struct survives)
    for order in (updates, updates[::-1], rng.sample(updates, len(updates))):
        expected = js(op="merge", updates=_hex(order))["out"]
        assert merge_updates(order).hex() == expected
    merged = merge_updates(updates)
    parsed = parse_update(merged)
    assert state_vector_from_update(merged).hex() == js(op="sv", update=merged.hex())["out"]
    for update in updates[:3]:
        assert state_vector_from_update(update).hex() == js(op="sv", update=update.hex())["out"]

    # (2) diff against state vectors of partial replays: bytes equal, and SV-state + diff in JS
    # gives the full document (for bases without pending structs: with them, yjs' own diff
    # does not converge either)
    for entry in trace["svs"]:
        sv = bytes.fromhex(entry["sv"])
        ours = diff_update(parsed, sv)
        assert ours.hex() == js(op="diff", update=merged.hex(), sv=entry["sv"])["out"]
        if entry["pending"]:
            continue
        base = [trace["updates"][i] for i in entry["base"]]
        docs = js(op="docs", updates=trace["updates"], base=base, candidate=ours.hex())
        assert docs["got"] == docs["want"]
    # ... and against arbitrary state vectors, which cut Items anywhere (emoji included)
    for _ in range(4):
        sv = encode_state_vector(
            [(c, rng.randrange(0, 60)) for c in trace["clients"] if rng.random() < 0.8]
        )
        assert (
            diff_update(parsed, sv).hex() == js(op="diff", update=merged.hex(), sv=sv.hex())["out"]
        )

    # (3) the merged document is the writers' document, JSON key order included
    docs = js(op="docs", updates=trace["updates"], candidate=merged.hex())
    assert docs["got"] == docs["want"]
    for key, value in docs["got"]["m"].items():
        if value["kind"] == "json":
            assert value["s"] in trace["written"][key]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**31 - 1))
def test_structurally_odd_updates_match_yjs(js: Oracle, seed: int) -> None:
    """Skips, GC/Item ties, zero-length structs, overlong varUints, stray info bits."""
    rng = random.Random(seed)
    for _ in range(10):
        updates = [random_update(rng) for _ in range(rng.randrange(2, 7))]
        assert merge_updates(updates).hex() == js(op="merge", updates=_hex(updates))["out"]
        update, sv = updates[0], random_state_vector(rng)
        assert (
            diff_update(update, sv).hex() == js(op="diff", update=update.hex(), sv=sv.hex())["out"]
        )
        assert state_vector_from_update(update).hex() == js(op="sv", update=update.hex())["out"]


def test_v8_sort_replica_matches_node(js: Oracle) -> None:
    """yjs' decoder comparator is inconsistent for GC/Item ties; V8's exact steps matter."""
    from edrys_relay.protocol.v8sort import v8_sort

    rng = random.Random(1)
    arrays = []
    for _ in range(400):
        n = rng.choice([rng.randrange(1, 12), rng.randrange(1, 70), rng.randrange(60, 600)])
        keys = rng.choice([2, 5, 20, n + 1])
        if rng.random() < 0.3:  # nearly sorted, the shape yjs sorts in every merge step
            base = sorted(rng.randrange(keys) for _ in range(n))
            base[0] = rng.randrange(keys)
            arrays.append([[k, rng.randrange(2)] for k in base])
        else:
            arrays.append([[rng.randrange(keys), rng.randrange(2)] for _ in range(n)])
    expected = js(op="sort", arrays=arrays)["out"]

    def cmp(a: tuple[int, int, int], b: tuple[int, int, int]) -> int:
        if a[0] == b[0]:
            return 0 if a[1] == b[1] else -1
        return a[0] - b[0]

    for arr, want in zip(arrays, expected, strict=True):
        items = [(k, t, i) for i, (k, t) in enumerate(arr)]
        v8_sort(items, cmp)
        assert [i for _, _, i in items] == want
