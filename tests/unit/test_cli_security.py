"""Security flags, the ``token`` command and TLS start-up errors (issue #6)."""

from __future__ import annotations

import gc
import ipaddress
import stat
import time
from pathlib import Path

import pytest
from cryptography import x509

from edrys_relay.cli import build_parser, main
from edrys_relay.cli.serve import security_settings
from edrys_relay.cli.token import parse_ttl
from edrys_relay.protocol.edrys_link import comm_parameter
from edrys_relay.security.tokens import Role, TokenSigner
from edrys_relay.server import tls

SECRET = "cli-secret-0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("45m", 2700), ("2h", 7200), ("7D", 604800)]
)
def test_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-5m", "2 h", "1.5h", "0", "400d", "5y"])
def test_bad_ttl(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)


@pytest.mark.parametrize(
    ("flags", "role"), [([], Role.WRITE), (["--read-only"], Role.READ), (["--source"], Role.SOURCE)]
)
def test_token_command(capsys: pytest.CaptureFixture[str], flags: list[str], role: Role) -> None:
    assert main(["token", "room-1", "--ttl", "2h", f"--auth-secret={SECRET}", *flags]) == 0
    token = capsys.readouterr().out.strip()
    claims = TokenSigner((SECRET,)).verify(token, now=time.time())
    assert (claims.room, claims.role) == ("room-1", role)
    assert claims.expires - claims.not_before == 7200


def test_token_command_reads_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDRYS_RELAY_SECRET", SECRET)
    assert main(["token", "r"]) == 0
    assert TokenSigner((SECRET,)).verify(capsys.readouterr().out.strip(), now=time.time())
    monkeypatch.delenv("EDRYS_RELAY_SECRET")
    assert main(["token", "r"]) == 2
    assert "EDRYS_RELAY_SECRET" in capsys.readouterr().err


def test_token_command_refuses_short_secrets_and_bad_rooms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["token", "r", "--auth-secret=short"]) == 2
    assert main(["token", "bad room", f"--auth-secret={SECRET}"]) == 2
    assert capsys.readouterr().out == ""


def test_token_command_with_server_prints_ready_urls(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["token", "Lab1", "--ttl", "45m", "--read-only", "--server", "https://relay.example/"]
    assert main([*args, f"--auth-secret={SECRET}"]) == 0
    out, err = capsys.readouterr()
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert list(lines) == [
        "websocket",
        "signaling",
        "stream",
        "link websocket",
        "link webrtc",
        "token",
        "expires",
    ]
    token = lines["token"]
    claims = TokenSigner((SECRET,)).verify(token, now=time.time())
    assert (claims.room, claims.role, claims.expires - claims.not_before) == ("Lab1", "read", 2700)
    url = f"wss://relay.example/t/{token}"
    assert lines["websocket"] == lines["signaling"] == url
    assert lines["stream"] == url + "/stream"
    for label, method in (("link websocket", "Websocket"), ("link webrtc", "WebRTC")):
        link = comm_parameter(method, websocket_url=url, signaling=[url])
        assert lines[label] == f"#comm={link}"
    assert lines["expires"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claims.expires))
    assert "WebSocket mode only" in err


@pytest.mark.parametrize("server", ["ftp://relay.example", "wss://relay.example/?x=1"])
def test_token_command_refuses_a_bad_server_url(
    capsys: pytest.CaptureFixture[str], server: str
) -> None:
    assert main(["token", "r", "--server", server, f"--auth-secret={SECRET}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--server" in err


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return tls.ensure_self_signed(tmp_path / "tls")


def test_serve_refuses_unusable_security_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pair: tuple[Path, Path]
) -> None:
    cert, key = (str(p) for p in pair)
    other_cert, _ = tls.ensure_self_signed(tmp_path / "other")
    cases = {
        "missing file": ["--ssl-key", "/nonexistent/key.pem", "--ssl-cert", cert],
        "key without cert": [f"--ssl-key={key}"],
        "not PEM": [f"--ssl-key={key}", f"--ssl-cert={tmp_path}/tls/../tls"],
        "key mismatch": [f"--ssl-key={key}", f"--ssl-cert={other_cert}"],
        "origin with path": ["--allowed-origin", "https://school.example/"],
        "short secret": ["--auth-secret", "short"],
        "bad proxy": ["--trusted-proxy", "proxy.local"],
    }
    for name, flags in cases.items():
        assert main(["serve", "--port", "0", *flags]) == 2, name
        assert capsys.readouterr().err.startswith("edrys-relay: "), name


def test_serve_refuses_half_of_the_environment_pair(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, pair: tuple[Path, Path]
) -> None:
    monkeypatch.setenv("SSL_CERT", str(pair[0]))
    assert main(["serve", "--port", "0"]) == 2
    assert "go together" in capsys.readouterr().err


def test_self_signed_certificate_is_made_once_and_reused(tmp_path: Path) -> None:
    cert_path, key_path = tls.ensure_self_signed(tmp_path)
    first = cert_path.read_bytes()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(first)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert tls.ensure_self_signed(tmp_path) == (cert_path, key_path)
    assert cert_path.read_bytes() == first  # reused
    tls.server_context(str(cert_path), str(key_path))
    # a pair left inconsistent by a crash is replaced, not served
    _, other_key = tls.ensure_self_signed(tmp_path / "other")
    key_path.write_bytes(other_key.read_bytes())
    tls.ensure_self_signed(tmp_path)
    assert cert_path.read_bytes() != first
    tls.server_context(str(cert_path), str(key_path))


def test_message_rate_flags_reach_the_settings() -> None:
    args = build_parser().parse_args(
        ["serve", "--message-rate", "500", "--message-burst=1000", "--store", "memory"]
    )
    assert security_settings(args)["message_rate"] == 500.0
    assert security_settings(args)["message_burst"] == 1000
    defaults = security_settings(build_parser().parse_args(["serve"]))
    assert (defaults["message_rate"], defaults["message_burst"]) == (200.0, 400)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--message-rate", "0"])


def test_connection_cap_flags_reach_the_settings() -> None:
    args = build_parser().parse_args(
        ["serve", "--max-connections", "9000", "--max-connections-per-address=5000"]
    )
    settings = security_settings(args)
    assert (settings["max_connections"], settings["max_connections_per_address"]) == (9000, 5000)
    defaults = security_settings(build_parser().parse_args(["serve"]))
    assert (defaults["max_connections"], defaults["max_connections_per_address"]) == (4096, 1024)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--max-connections", "0"])


def test_serving_process_tunes_the_garbage_collector() -> None:
    from edrys_relay.cli.serve import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # what imports created is no longer scanned
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
