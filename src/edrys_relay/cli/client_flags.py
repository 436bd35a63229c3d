"""Flags that ``join`` and ``doctor`` share: how the Python client reaches a classroom."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from typing import Any
from urllib.parse import urlsplit

from edrys_relay.client.options import ClientOptions

SERVER_HELP = "server address: ws://HOST:PORT, wss://HOST:PORT, http(s)://HOST:PORT or HOST:PORT"


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
        help="signaling server, written like SERVER (repeatable; default: SERVER itself)",
    )
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server such as stun:stun.example.org:3478 (repeatable; default none)",
    )


async def reachable(url: str, seconds: float, error: type[Exception]) -> None:
    """Raise ``error`` with the reason unless something accepts TCP connections at ``url``.

    Fails fast where the client would otherwise retry quietly until its timeout: nothing
    listens there, or the name does not resolve.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        sock = await asyncio.to_thread(socket.create_connection, (host, port), seconds)
    except TimeoutError:
        raise error(f"cannot connect to {host}:{port}: no answer within {seconds}s") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or exc
        raise error(f"cannot connect to {host}:{port}: {reason}") from None
    sock.close()


def client_options(args: argparse.Namespace, **overrides: Any) -> ClientOptions:
    return ClientOptions(
        password=args.password,
        framing=args.framing,
        signaling_urls=tuple(args.signaling),
        ice_servers=tuple(args.ice_server),
        **overrides,
    )


__all__ = ["SERVER_HELP", "add_client_flags", "client_options", "reachable"]
