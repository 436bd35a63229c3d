"""The WebRTC bridge flags of ``edrys-relay serve`` map onto Settings."""

import pytest

from edrys_relay.cli import build_parser
from edrys_relay.cli.serve import bridge_settings
from edrys_relay.config import Settings


def test_bridge_is_off_by_default() -> None:
    settings = Settings(**bridge_settings(build_parser().parse_args(["serve"])))
    assert settings == Settings()
    assert settings.bridge_webrtc is False
    assert settings.bridge_passwords == ("password",)


def test_bridge_flags() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--bridge-webrtc",
            "--bridge-password=one",
            "--bridge-password",
            "two",
            "--bridge-max-peers-per-room=3",
            "--bridge-max-peers",
            "9",
            "--bridge-ice-server=stun:stun.example:3478",
        ]
    )
    settings = Settings(**bridge_settings(args))
    assert settings.bridge_webrtc is True
    assert settings.bridge_passwords == ("one", "two")
    assert settings.bridge_max_peers_per_room == 3
    assert settings.bridge_max_peers == 9
    assert settings.bridge_ice_servers == ("stun:stun.example:3478",)


def test_bridge_is_refused_with_redis(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["serve", "--bridge-webrtc", "--redis", "redis://127.0.0.1:1/0", "--port", "0"]
    )
    assert args.run(args) == 2
    assert "--bridge-webrtc runs on one node, not with --redis" in capsys.readouterr().err
