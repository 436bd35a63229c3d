"""Pieces every command group shares: defaults, environment parsing, shared flags."""

from __future__ import annotations

import argparse
import os
from typing import Any, TypeAlias

from edrys_relay.config import Settings

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The ``add_subparsers`` object each command group adds its parsers to."""

DEFAULTS = Settings()


def env_int(name: str, default: int) -> int:
    """An integer environment variable, or ``default`` when unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        message = f"edrys-relay: environment variable {name}={raw!r} is not a number"
        raise SystemExit(message) from None


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def add_data_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("EDRYS_RELAY_DATA_DIR") or DEFAULTS.data_dir,
        help="directory of the SQLite database (env EDRYS_RELAY_DATA_DIR; default %(default)s)",
    )


def add_secret_flag(parser: argparse.ArgumentParser | Any) -> None:
    parser.add_argument(
        "--auth-secret",
        action="append",
        default=[],
        metavar="SECRET",
        help="room-token secret, turns access control on; repeat to accept an older one during"
        " a rotation, newest first (env EDRYS_RELAY_SECRET)",
    )


def secrets(args: argparse.Namespace) -> tuple[str, ...]:
    """The token secrets: ``--auth-secret`` flags, else ``EDRYS_RELAY_SECRET``."""
    env = os.environ.get("EDRYS_RELAY_SECRET")
    return tuple(args.auth_secret) or ((env,) if env else ())
