"""Long fuzzing runs: ``python -m fuzz.run TARGET --seconds 3600`` (or ``all``).

Random and mutated inputs (hypothesis), or libFuzzer-style coverage-guided fuzzing when
``atheris`` is installed (``--atheris``). Each target runs in its own subprocess with an address
space limit, so an abort or runaway allocation shows up as a failed child, not a dead runner;
a failing child's last input is saved to ``fuzz/corpus/`` for the regression corpus.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz import targets

MEMORY_LIMIT = 1 << 30
CORPUS = Path(__file__).parent / "corpus"


def mutated(name: str) -> st.SearchStrategy[bytes]:
    """Seeds with bytes flipped, cut, inserted or repeated, plus plain random bytes."""
    seed = st.sampled_from(targets.seeds(name))

    def mutate(data: bytes, position: int, junk: bytes, mode: int) -> bytes:
        cut = position % (len(data) + 1)
        if mode == 0:
            return data[:cut] + junk + data[cut + len(junk) :]
        if mode == 1:
            return data[:cut]
        if mode == 2:
            return data[:cut] + junk + data[cut:]
        return data[:cut] + data[cut:] * 3

    edits = st.builds(
        mutate, seed, st.integers(0, 1 << 16), st.binary(min_size=1, max_size=9), st.integers(0, 3)
    )
    return st.one_of(edits, st.binary(max_size=512))


def hypothesis_loop(name: str, seconds: float, examples: int = 2000) -> None:
    """Run batches until the time is up; the last input is kept for post-mortems."""
    target = {**targets.IN_PROCESS, **targets.SUBPROCESS}[name]
    last = CORPUS / f"last-{name}.bin"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutated(name))
    def check(data: bytes) -> None:
        last.write_bytes(data)
        targets.run(target, data)

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        check()
    last.unlink(missing_ok=True)


def atheris_loop(name: str, seconds: float) -> None:  # pragma: no cover - optional
    import atheris  # type: ignore[import-untyped]

    target = {**targets.IN_PROCESS, **targets.SUBPROCESS}[name]
    sys.argv = [sys.argv[0], f"-max_total_time={int(seconds)}", f"-artifact_prefix={CORPUS}/"]
    atheris.Setup(sys.argv, lambda data: targets.run(target, data))
    atheris.Fuzz()


def child(name: str, seconds: float, use_atheris: bool) -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    (atheris_loop if use_atheris else hypothesis_loop)(name, seconds)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    names = sorted({**targets.IN_PROCESS, **targets.SUBPROCESS})
    parser.add_argument("target", choices=[*names, "all"])
    parser.add_argument("--seconds", type=float, default=60.0, help="per target")
    parser.add_argument("--atheris", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.target, args.seconds, args.atheris)
    failed = []
    for name in names if args.target == "all" else [args.target]:
        command = [sys.executable, "-m", "fuzz.run", name, "--child", f"--seconds={args.seconds}"]
        if args.atheris:
            command.append("--atheris")
        result = subprocess.run(command, cwd=Path(__file__).parent.parent, env=os.environ.copy())
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"fuzz {name}: {status}", flush=True)
        if result.returncode != 0:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
