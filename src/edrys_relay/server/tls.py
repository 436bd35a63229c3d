"""TLS for HTTPS/WSS: load a certificate, or make and keep a self-signed one (docs/threats.md A6).

The self-signed certificate is generated in Python (``cryptography``; no ``openssl`` binary),
stored in the data directory and reused while it is valid for at least another day. Its subject
names cover localhost, the loopback addresses and this host's own names and addresses. Any
problem with a key or certificate is a :class:`TLSError` at start-up, never a fall-back to
plain HTTP.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_NAME = "server-cert.pem"
KEY_NAME = "server-key.pem"
VALID_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=1)


class TLSError(Exception):
    """A key or certificate that cannot be used; the message says which file and why."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context with TLS 1.2 or newer.

    Raises:
        TLSError: a file is missing, unreadable, not PEM, or the key does not match.
    """
    for label, path in (("certificate", cert_file), ("key", key_file)):
        if not Path(path).is_file():
            raise TLSError(f"TLS {label} file not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise TLSError(
            f"cannot use TLS certificate {cert_file} with key {key_file}: {exc}"
        ) from exc
    return context


def ensure_self_signed(directory: Path) -> tuple[Path, Path]:
    """Return (cert, key) paths in ``directory``, generating them if absent or expiring.

    Raises:
        TLSError: the directory cannot be created or written.
    """
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    if _still_valid(cert_path, key_path):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, _subject_names())
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_private(key_path, _key_pem(key))
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise TLSError(f"cannot store the self-signed certificate in {directory}: {exc}") from exc
    return cert_path, key_path


def _still_valid(cert_path: Path, key_path: Path) -> bool:
    """A stored pair that matches and has more than a day left (a crash may leave a stale pair)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    now = datetime.datetime.now(datetime.UTC)
    same_key = cert.public_key() == key.public_key()
    return same_key and cert.not_valid_after_utc - now > RENEW_BEFORE


def _subject_names() -> list[x509.GeneralName]:
    names: set[str] = {"localhost", socket.gethostname(), socket.getfqdn()}
    addresses: set[str] = {"127.0.0.1", "::1"}
    for name in list(names):
        try:
            infos = socket.getaddrinfo(name, None)
        except OSError:
            continue
        addresses.update(str(info[4][0]).split("%")[0] for info in infos)
    dns: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(names) if n and _is_dns(n)]
    ips: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)
    ]
    return dns + ips


def _is_dns(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name.isascii()
    return False


def _self_signed(
    key: ec.EllipticCurvePrivateKey, names: list[x509.GeneralName]
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edrys-relay self-signed")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600, so a crash never leaves half a key."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


__all__ = ["CERT_NAME", "KEY_NAME", "TLSError", "ensure_self_signed", "server_context"]
