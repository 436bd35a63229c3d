"""Run ``edrys-relay`` on uvloop's event loop, to measure the loop choice (bench only)."""

from __future__ import annotations

import sys

import uvloop

from edrys_relay.cli import main

if __name__ == "__main__":
    uvloop.install()
    sys.exit(main(sys.argv[1:]))
