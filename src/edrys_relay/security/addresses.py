"""Which client address a connection counts against (docs/threats.md V21 and A11).

``X-Forwarded-For`` is honoured only when the TCP peer is a configured trusted proxy; the client
is then the right-most address in the header that is not itself a trusted proxy (everything to
the left of it was written by the client and can be forged).
"""

from __future__ import annotations

import functools
import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(specs: tuple[str, ...]) -> tuple[Network, ...]:
    """Parse ``--trusted-proxy`` values (addresses or CIDR networks).

    Raises:
        ValueError: a value that is neither.
    """
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


@functools.lru_cache(maxsize=4096)
def _normal(address: str) -> str | None:
    """The canonical text of an IP address (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str, forwarded_for: list[str], proxies: tuple[Network, ...]) -> str:
    """The address to account a connection to.

    Args:
        peer: the TCP peer address.
        forwarded_for: every ``X-Forwarded-For`` header value, in order.
        proxies: trusted proxy networks.
    """
    peer = _normal(peer) or peer
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops[-16:]):  # a bounded walk: no real chain has more hops
        if not _trusted(hop, proxies):
            # garbage in the chain is counted against the proxy itself
            return _normal(hop) or peer
    return peer


__all__ = ["Network", "client_address", "parse_proxies"]
