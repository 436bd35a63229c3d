"""``edrys-relay doctor SERVER``: which doors of a server work, and which mode to use."""

from __future__ import annotations

import argparse
import asyncio
import sys

from edrys_relay.cli.client_flags import SERVER_HELP, add_client_flags, client_options
from edrys_relay.cli.common import Commands, positive_float

DOCTOR_EPILOG = """\
The WebRTC check runs two peers on this machine: it shows that signaling works and that a data
channel opens here, not that peers on other networks reach each other. A check that cannot run
here says so ("skip") and does not count as a failure.

exit status: 0 no check failed, 1 a check failed, 2 bad arguments
"""


def add_parser(commands: Commands) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check which doors of a server work and which mode to use",
        description="Check HTTP, the Yjs door, the signaling door, the stream door and a WebRTC "
        "data channel between two local peers through SERVER's signaling.",
        epilog=DOCTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument("server", metavar="SERVER", help=SERVER_HELP)
    doctor.add_argument(
        "--timeout",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="seconds per check, twice that for WebRTC (default %(default)s)",
    )
    doctor.add_argument("--no-webrtc", action="store_true", help="skip the data-channel check")
    add_client_flags(doctor)
    doctor.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edrys_relay.client.doctor import diagnose, verdict

    try:
        options = client_options(args, connect_timeout=args.timeout)
        checks = asyncio.run(
            diagnose(args.server, seconds=args.timeout, webrtc=not args.no_webrtc, options=options)
        )
    except ValueError as exc:
        print(f"edrys-relay doctor: {exc}", file=sys.stderr)
        return 2
    for check in checks:
        print(f"{_MARKS[check.ok]}  {check.name}: {check.detail}")
    modes, advice = verdict(checks)
    print()
    for mode, text in modes.items():
        print(f"{mode}: {text}")
    print(f"recommendation: {advice}")
    return 1 if any(check.ok is False for check in checks) else 0


_MARKS = {True: "ok  ", False: "FAIL", None: "skip"}


__all__ = ["add_parser", "run"]
