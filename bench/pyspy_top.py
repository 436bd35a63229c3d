"""Summarise a py-spy ``--format raw`` (collapsed stacks) file: self and inclusive shares."""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``; line numbers merged."""
    name = _LINE.sub(")", frame.strip())
    if "(" in name:
        func, _, where = name.partition(" (")
        name = f"{func} ({Path(where.rstrip(')')).name})"
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("-n", type=int, default=25)
    args = parser.parse_args()
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in args.file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if f]
        # py-spy puts the thread first; skip frames that are not code.
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            incl[name] += count
    print(f"{total} samples")
    print("self %   function")
    for name, count in own.most_common(args.n):
        print(f"{100 * count / total:6.1f}  {name}")
    print("\nincl %   function")
    for name, count in incl.most_common(args.n):
        print(f"{100 * count / total:6.1f}  {name}")


if __name__ == "__main__":
    main()
