"""Server addresses as people type them: HOST:PORT and http(s):// map to ws(s)://."""

from __future__ import annotations

import re

import pytest

from edrys_relay.client.urls import server_url, signaling_url


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("ws://localhost:1234", "ws://localhost:1234"),
        ("localhost:1234", "ws://localhost:1234"),
        ("  127.0.0.1:1234/  ", "ws://127.0.0.1:1234"),
        ("[::1]:1234", "ws://[::1]:1234"),
        ("http://127.0.0.1:1234/", "ws://127.0.0.1:1234"),
        ("HTTPS://school.example", "wss://school.example"),
        ("wss://school.example/edrys/", "wss://school.example/edrys"),
    ],
)
def test_server_addresses(text: str, url: str) -> None:
    assert server_url(text) == url


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no server address given"),
        ("ftp://school.example", "is not a server address"),
        ("ws://", "names no host"),
        ("localhost:99999", "no valid port"),
        ("localhost:port", "no valid port"),
        ("ws://localhost:1234/?token=x", "no '?' or '#' part"),
        ("localhost:1234#top", "no '?' or '#' part"),
    ],
)
def test_bad_server_addresses_say_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        server_url(text)


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("localhost:1234", "ws://localhost:1234/"),
        ("https://school.example/signaling?token=abc", "wss://school.example/signaling?token=abc"),
        ("ws://127.0.0.1:9/", "ws://127.0.0.1:9/"),
    ],
)
def test_signaling_urls_keep_path_and_query(text: str, url: str) -> None:
    assert signaling_url(text) == url


def test_signaling_url_refuses_a_fragment() -> None:
    with pytest.raises(ValueError, match="no '#' part"):
        signaling_url("ws://localhost:1234/#x")
