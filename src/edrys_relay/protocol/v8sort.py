"""V8's ``Array.prototype.sort`` (TimSort, ``third_party/v8/builtins/array-sort.tq``) in Python.

Why: yjs' ``mergeUpdates`` sorts its decoders with a comparator that is inconsistent when two
updates hold the same ID once as a GC and once as an Item (it answers -1 both ways). The order it
then ends up with is whatever V8's TimSort does with those answers, so reproducing yjs' bytes in
that case means replaying the very same sequence of comparisons. Written from the algorithm
description (the same as CPython's listsort); ``tests/interop`` checks it against node 20
(V8 11.3, which has no small-array shortcut: every length goes through run detection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_MIN_GALLOP = 7


class _State:
    __slots__ = ("a", "cmp", "min_gallop", "runs")

    def __init__(self, a: list[T], cmp: Callable[[T, T], int]) -> None:
        self.a: list[object] = a  # type: ignore[assignment]
        self.cmp: Callable[[object, object], int] = cmp  # type: ignore[assignment]
        self.min_gallop = _MIN_GALLOP
        self.runs: list[list[int]] = []


def v8_sort(a: list[T], cmp: Callable[[T, T], int]) -> None:
    """Sort ``a`` in place exactly as V8 does with comparator ``cmp`` (even an inconsistent one)."""
    n = len(a)
    if n < 2:
        return
    s = _State(a, cmp)
    low = 0
    remaining = n
    min_run = _min_run_length(n)
    while remaining:
        run = _count_and_make_run(s, low, low + remaining)
        if run < min_run:
            forced = min(min_run, remaining)
            _binary_insertion_sort(s, low, low + run, low + forced)
            run = forced
        s.runs.append([low, run])
        _merge_collapse(s)
        low += run
        remaining -= run
    while len(s.runs) > 1:  # MergeForceCollapse
        k = len(s.runs) - 2
        if k > 0 and s.runs[k - 1][1] < s.runs[k + 1][1]:
            k -= 1
        _merge_at(s, k)


def _min_run_length(n: int) -> int:
    r = 0
    while n >= 64:
        r |= n & 1
        n >>= 1
    return n + r


def _binary_insertion_sort(s: _State, low: int, start: int, high: int) -> None:
    a, cmp = s.a, s.cmp
    if start == low:
        start += 1
    while start < high:
        left, right = low, start
        pivot = a[right]
        while left < right:
            mid = left + ((right - left) >> 1)
            if cmp(pivot, a[mid]) < 0:
                right = mid
            else:
                left = mid + 1
        a[left + 1 : start + 1] = a[left:start]
        a[left] = pivot
        start += 1


def _count_and_make_run(s: _State, low_arg: int, high: int) -> int:
    a, cmp = s.a, s.cmp
    low = low_arg + 1
    if low == high:
        return 1
    run = 2
    descending = cmp(a[low], a[low - 1]) < 0
    prev = a[low]
    for idx in range(low + 1, high):
        cur = a[idx]
        order = cmp(cur, prev)
        if (order >= 0) if descending else (order < 0):
            break
        prev = cur
        run += 1
    if descending:
        a[low_arg : low_arg + run] = a[low_arg : low_arg + run][::-1]
    return run


def _invariant(runs: list[list[int]], n: int) -> bool:
    if n < 2:
        return True
    return runs[n - 2][1] > runs[n - 1][1] + runs[n][1]


def _merge_collapse(s: _State) -> None:
    runs = s.runs
    while len(runs) > 1:
        n = len(runs) - 2
        if not _invariant(runs, n + 1) or not _invariant(runs, n):
            if runs[n - 1][1] < runs[n + 1][1]:
                n -= 1
            _merge_at(s, n)
        elif runs[n][1] <= runs[n + 1][1]:
            _merge_at(s, n)
        else:
            break


def _merge_at(s: _State, i: int) -> None:
    a, runs = s.a, s.runs
    base_a, len_a = runs[i]
    base_b, len_b = runs[i + 1]
    runs[i][1] = len_a + len_b
    del runs[i + 1]
    k = _gallop_right(s, a, a[base_b], base_a, len_a, 0)
    base_a += k
    len_a -= k
    if len_a == 0:
        return
    len_b = _gallop_left(s, a, a[base_a + len_a - 1], base_b, len_b, len_b - 1)
    if len_b == 0:
        return
    if len_a <= len_b:
        _merge_low(s, base_a, len_a, base_b, len_b)
    else:
        _merge_high(s, base_a, len_a, base_b, len_b)


def _gallop_left(
    s: _State, arr: list[object], key: object, base: int, length: int, hint: int
) -> int:
    cmp = s.cmp
    last, ofs = 0, 1
    if cmp(arr[base + hint], key) < 0:
        max_ofs = length - hint
        while ofs < max_ofs:
            if cmp(arr[base + hint + ofs], key) >= 0:
                break
            last = ofs
            ofs = (ofs << 1) + 1
        ofs = min(ofs, max_ofs)
        last += hint
        ofs += hint
    else:
        max_ofs = hint + 1
        while ofs < max_ofs:
            if cmp(arr[base + hint - ofs], key) < 0:
                break
            last = ofs
            ofs = (ofs << 1) + 1
        ofs = min(ofs, max_ofs)
        last, ofs = hint - ofs, hint - last
    last += 1
    while last < ofs:
        m = last + ((ofs - last) >> 1)
        if cmp(arr[base + m], key) < 0:
            last = m + 1
        else:
            ofs = m
    return ofs


def _gallop_right(
    s: _State, arr: list[object], key: object, base: int, length: int, hint: int
) -> int:
    cmp = s.cmp
    last, ofs = 0, 1
    if cmp(key, arr[base + hint]) < 0:
        max_ofs = hint + 1
        while ofs < max_ofs:
            if cmp(key, arr[base + hint - ofs]) >= 0:
                break
            last = ofs
            ofs = (ofs << 1) + 1
        ofs = min(ofs, max_ofs)
        last, ofs = hint - ofs, hint - last
    else:
        max_ofs = length - hint
        while ofs < max_ofs:
            if cmp(key, arr[base + hint + ofs]) < 0:
                break
            last = ofs
            ofs = (ofs << 1) + 1
        ofs = min(ofs, max_ofs)
        last += hint
        ofs += hint
    last += 1
    while last < ofs:
        m = last + ((ofs - last) >> 1)
        if cmp(key, arr[base + m]) < 0:
            ofs = m
        else:
            last = m + 1
    return ofs


def _merge_low(s: _State, base_a: int, len_a: int, base_b: int, len_b: int) -> None:
    a, cmp = s.a, s.cmp
    tmp = a[base_a : base_a + len_a]
    dest, ct, cb = base_a, 0, base_b
    a[dest] = a[cb]
    dest += 1
    cb += 1
    len_b -= 1
    if len_b == 0:
        a[dest : dest + len_a] = tmp[ct : ct + len_a]
        return
    if len_a == 1:
        a[dest : dest + len_b] = a[cb : cb + len_b]
        a[dest + len_b] = tmp[ct]
        return
    min_gallop = s.min_gallop
    while True:
        wins_a = wins_b = 0
        while True:
            if cmp(a[cb], tmp[ct]) < 0:
                a[dest] = a[cb]
                dest += 1
                cb += 1
                wins_b += 1
                len_b -= 1
                wins_a = 0
                if len_b == 0:
                    a[dest : dest + len_a] = tmp[ct : ct + len_a]
                    return
                if wins_b >= min_gallop:
                    break
            else:
                a[dest] = tmp[ct]
                dest += 1
                ct += 1
                wins_a += 1
                len_a -= 1
                wins_b = 0
                if len_a == 1:
                    a[dest : dest + len_b] = a[cb : cb + len_b]
                    a[dest + len_b] = tmp[ct]
                    return
                if wins_a >= min_gallop:
                    break
        min_gallop += 1
        first = True
        while wins_a >= _MIN_GALLOP or wins_b >= _MIN_GALLOP or first:
            first = False
            min_gallop = max(1, min_gallop - 1)
            s.min_gallop = min_gallop
            wins_a = _gallop_right(s, tmp, a[cb], ct, len_a, 0)
            if wins_a > 0:
                a[dest : dest + wins_a] = tmp[ct : ct + wins_a]
                dest += wins_a
                ct += wins_a
                len_a -= wins_a
                if len_a == 1:
                    a[dest : dest + len_b] = a[cb : cb + len_b]
                    a[dest + len_b] = tmp[ct]
                    return
                if len_a == 0:
                    return
            a[dest] = a[cb]
            dest += 1
            cb += 1
            len_b -= 1
            if len_b == 0:
                a[dest : dest + len_a] = tmp[ct : ct + len_a]
                return
            wins_b = _gallop_left(s, a, tmp[ct], cb, len_b, 0)
            if wins_b > 0:
                a[dest : dest + wins_b] = a[cb : cb + wins_b]
                dest += wins_b
                cb += wins_b
                len_b -= wins_b
                if len_b == 0:
                    a[dest : dest + len_a] = tmp[ct : ct + len_a]
                    return
            a[dest] = tmp[ct]
            dest += 1
            ct += 1
            len_a -= 1
            if len_a == 1:
                a[dest : dest + len_b] = a[cb : cb + len_b]
                a[dest + len_b] = tmp[ct]
                return
        min_gallop += 1
        s.min_gallop = min_gallop


def _merge_high(s: _State, base_a: int, len_a: int, base_b: int, len_b: int) -> None:
    a, cmp = s.a, s.cmp
    tmp = a[base_b : base_b + len_b]
    dest = base_b + len_b - 1
    ct = len_b - 1
    ca = base_a + len_a - 1

    def succeed() -> None:
        if len_b > 0:
            a[dest - (len_b - 1) : dest + 1] = tmp[0:len_b]

    def copy_a() -> None:
        d = dest - len_a
        c = ca - len_a
        a[d + 1 : d + 1 + len_a] = a[c + 1 : c + 1 + len_a]
        a[d] = tmp[ct]

    a[dest] = a[ca]
    dest -= 1
    ca -= 1
    len_a -= 1
    if len_a == 0:
        return succeed()
    if len_b == 1:
        return copy_a()
    min_gallop = s.min_gallop
    while True:
        wins_a = wins_b = 0
        while True:
            if cmp(tmp[ct], a[ca]) < 0:
                a[dest] = a[ca]
                dest -= 1
                ca -= 1
                wins_a += 1
                len_a -= 1
                wins_b = 0
                if len_a == 0:
                    return succeed()
                if wins_a >= min_gallop:
                    break
            else:
                a[dest] = tmp[ct]
                dest -= 1
                ct -= 1
                wins_b += 1
                len_b -= 1
                wins_a = 0
                if len_b == 1:
                    return copy_a()
                if wins_b >= min_gallop:
                    break
        min_gallop += 1
        first = True
        while wins_a >= _MIN_GALLOP or wins_b >= _MIN_GALLOP or first:
            first = False
            min_gallop = max(1, min_gallop - 1)
            s.min_gallop = min_gallop
            k = _gallop_right(s, a, tmp[ct], base_a, len_a, len_a - 1)
            wins_a = len_a - k
            if wins_a > 0:
                dest -= wins_a
                ca -= wins_a
                a[dest + 1 : dest + 1 + wins_a] = a[ca + 1 : ca + 1 + wins_a]
                len_a -= wins_a
                if len_a == 0:
                    return succeed()
            a[dest] = tmp[ct]
            dest -= 1
            ct -= 1
            len_b -= 1
            if len_b == 1:
                return copy_a()
            k = _gallop_left(s, tmp, a[ca], 0, len_b, len_b - 1)
            wins_b = len_b - k
            if wins_b > 0:
                dest -= wins_b
                ct -= wins_b
                a[dest + 1 : dest + 1 + wins_b] = tmp[ct + 1 : ct + 1 + wins_b]
                len_b -= wins_b
                if len_b == 1:
                    return copy_a()
                if len_b == 0:
                    return succeed()
            a[dest] = a[ca]
            dest -= 1
            ca -= 1
            len_a -= 1
            if len_a == 0:
                return succeed()
        min_gallop += 1
        s.min_gallop = min_gallop


__all__ = ["v8_sort"]
