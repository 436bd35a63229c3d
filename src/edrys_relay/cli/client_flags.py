"""Flags that ``join`` and ``doctor`` share: how the Python client reaches a classroom."""

from __future__ import annotations

import argparse
from typing import Any

from edrys_relay.client.options import ClientOptions


def add_client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password",
        default="password",
        help="WebRTC signaling password (Edrys-Lite always uses %(default)r)",
    )
    parser.add_argument(
        "--framing",
        choices=["edrys", "plain"],
        default="edrys",
        help="data-channel framing: edrys (the y-webrtc fork Edrys-Lite uses) or plain "
        "(upstream y-webrtc); default %(default)s",
    )
    parser.add_argument(
        "--signaling",
        action="append",
        default=[],
        metavar="URL",
        help="signaling server (repeatable; default: SERVER itself)",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server such as stun:stun.example.org:3478 (repeatable; default none)",
    )


def client_options(args: argparse.Namespace, **overrides: Any) -> ClientOptions:
    return ClientOptions(
        password=args.password,
        framing=args.framing,
        signaling_urls=tuple(args.signaling),
        ice_servers=tuple(args.ice_server),
        **overrides,
    )


__all__ = ["add_client_flags", "client_options"]
