"""``edrys-relay doctor SERVER``: which doors of a server work, and which mode to use."""

from __future__ import annotations

import argparse
import asyncio

from edrys_relay.cli.client_flags import add_client_flags, client_options
from edrys_relay.cli.common import Commands


def add_parser(commands: Commands) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check which doors of a server work and which mode to use",
        description="Check HTTP, the Yjs door, the signaling door, the stream door and a WebRTC "
        "data channel between two local peers through SERVER's signaling.",
    )
    doctor.add_argument("server", metavar="SERVER", help="server URL, e.g. ws://localhost:1234")
    doctor.add_argument(
        "--timeout", type=float, default=10.0, help="seconds per check (default %(default)s)"
    )
    doctor.add_argument("--no-webrtc", action="store_true", help="skip the data-channel check")
    add_client_flags(doctor)
    doctor.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from edrys_relay.client.doctor import diagnose, verdict

    options = client_options(args, connect_timeout=args.timeout)
    checks = asyncio.run(
        diagnose(args.server, seconds=args.timeout, webrtc=not args.no_webrtc, options=options)
    )
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    modes, advice = verdict(checks)
    print()
    for mode, text in modes.items():
        print(f"{mode}: {text}")
    print(f"recommendation: {advice}")
    return 0 if all(check.ok for check in checks) else 1


__all__ = ["add_parser", "run"]
