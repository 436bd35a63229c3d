"""Run ``edrys-relay`` with a full garbage collection on SIGUSR2 (bench only).

``run.py`` signals it before each memory sample, so RSS is measured after a GC, as the Node
reference is (``gc_signal.cjs``).
"""

from __future__ import annotations

import gc
import signal
import sys

from edrys_relay.cli import main

if __name__ == "__main__":
    signal.signal(signal.SIGUSR2, lambda _signum, _frame: gc.collect())
    sys.exit(main(sys.argv[1:]))
