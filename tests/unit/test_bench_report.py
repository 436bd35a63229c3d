"""bench/run.py's arithmetic: per-run figures, medians over runs, and target verdicts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RUN_PY = Path(__file__).resolve().parents[2] / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def fanout_run(bench: ModuleType, server: str, cpu: float, delivered: int, lost: int = 0) -> Any:
    out: dict[str, Any] = {
        "server_cpu_s": cpu,
        "load": {"delivered": delivered, "lost": lost, "duplicated": 0, "reordered": 0},
    }
    out["load"]["unknown"] = 0
    out.update(bench.derive(bench.SCENARIOS["fanout-1x100"], out))
    return {"scenario": "fanout-1x100", "server": server, **out}


def test_cpu_per_delivery_and_faults(bench: ModuleType) -> None:
    run = fanout_run(bench, "edrys", cpu=2.0, delivered=1_000_000, lost=3)
    assert run["cpu_us_per_delivery"] == pytest.approx(2.0)
    assert run["faults"] == 3


def test_medians_verdicts_and_faults_of_every_run(bench: ModuleType) -> None:
    runs = [
        fanout_run(bench, "edrys", 1.0, 1_000_000),
        fanout_run(bench, "edrys", 3.0, 1_000_000),
        fanout_run(bench, "edrys", 2.0, 1_000_000, lost=1),
        fanout_run(bench, "reference", 9.0, 1_000_000),
        {"scenario": "fanout-1x100", "server": "reference", "error": "boom"},
    ]
    summary = bench.summarise(runs)
    assert summary["fanout-1x100"]["edrys"]["cpu_us_per_delivery"] == pytest.approx(2.0)
    assert summary["fanout-1x100"]["edrys"]["faults_total"] == 1
    assert summary["fanout-1x100"]["reference"]["errors"] == 1
    (verdict,) = bench.verdicts(summary)
    assert "MISSED" in verdict  # 0.22x the reference, but one lost delivery
    report = {
        "stamp": "t",
        "command": "c",
        "machine": dict.fromkeys(
            ("cpu", "cores", "kernel", "python", "node", "websockets", "pycrdt"), "x"
        ),
        "reps": 3,
        "nice": -10,
        "loadavg": [1.0, 2.0],
        "summary": summary,
        "verdicts": [verdict],
        "notes": [],
        "runs": runs,
    }
    text = bench.markdown(report)
    assert "| edrys | 2.00 |" in text
    assert "fanout-1x100 / reference: boom" in text


def test_issue19_verdicts_connect_ratio_and_memory_after_gc(bench: ModuleType) -> None:
    def connect(server: str, rate: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server_cpu_s": 0.6,
            "load": {"connections": 3000, "connects_per_s": rate, "loadgen_cpu_s": 0.4},
        }
        out.update(bench.derive(bench.SCENARIOS["connect-1room"], out))
        return {"scenario": "connect-1room", "server": server, **out}

    def idle(server: str, before: int, after: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server_cpu_s": 1.0,
            "load": {"connections": 1000},
            "rss_ready": before,
            "rss_done": after + 4096 * 1000,  # garbage a collection frees
            "rss_ready_gc": before,
            "rss_done_gc": after,
        }
        out.update(bench.derive(bench.SCENARIOS["idle-5000"], out))
        return {"scenario": "idle-5000", "server": server, **out}

    runs = [
        connect("edrys", 4400.0),
        connect("reference", 3000.0),
        idle("edrys", 10_000_000, 10_000_000 + 6 * 1024 * 1000),
        idle("reference", 10_000_000, 10_000_000 + 12 * 1024 * 1000),
    ]
    assert runs[0]["cpu_us_per_connection"] == pytest.approx(200.0)
    assert runs[2]["kib_per_connection_gc"] == pytest.approx(6.0)
    assert runs[2]["kb_per_connection"] == pytest.approx(10.0)
    lines = bench.verdicts(bench.summarise(runs))
    assert any("1.47×" in line and "MISSED" in line for line in lines)  # 4400/3000 < 1.5
    memory = "6.0 KiB/connection after GC vs 12.0 KiB"
    assert any(memory in line and "MET" in line for line in lines)
