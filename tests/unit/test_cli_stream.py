"""The ``/stream`` flags of ``edrys-relay serve`` map onto Settings."""

from edrys_relay.cli import build_parser
from edrys_relay.cli.serve import stream_settings
from edrys_relay.config import Settings


def test_stream_flags_default_to_the_settings_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert Settings(**stream_settings(args)) == Settings()


def test_stream_flags() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--stream-max-message=1000000",
            "--stream-max-fps",
            "20",
            "--stream-max-viewers=40",
            "--stream-ping-interval=2.5",
            "--stream-hide-rooms",
        ]
    )
    settings = Settings(**stream_settings(args))
    assert settings.stream_max_message == 1_000_000
    assert settings.stream_max_source_fps == 20.0
    assert settings.stream_max_viewers == 40
    assert settings.stream_ping_interval == 2.5
    assert settings.stream_list_rooms is False
