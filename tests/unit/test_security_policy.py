"""Pure security policy: origins (A5), client addresses (A11), buckets, ownership, redaction."""

from __future__ import annotations

import pytest

from edrys_relay.protocol.awareness import AwarenessEntry
from edrys_relay.protocol.routing import RoomName
from edrys_relay.security.addresses import client_address, parse_proxies
from edrys_relay.security.origins import origin_allowed, validate_origin
from edrys_relay.security.ratelimit import TokenBucket
from edrys_relay.security.redaction import redact, redacted_target, room_label
from edrys_relay.server.limits import AwarenessOwners, ConnectionCounter

ALLOWED = ("https://school.example", "http://localhost:8080")


@pytest.mark.parametrize(
    ("origin", "ok"),
    [
        ("https://school.example", True),
        ("http://localhost:8080", True),
        (None, True),  # not a browser page: the CSWSH defence does not apply
        ("https://evil.example", False),
        ("https://school.example.evil.com", False),
        ("https://evilschool.example", False),
        ("http://school.example", False),
        ("https://School.Example", False),
        ("https://school.example:443", False),
        ("https://school.example:8443", False),
        ("https://school.example/", False),
        ("null", False),
        ("", False),
    ],
)
def test_origin_allow_list_is_exact(origin: str | None, ok: bool) -> None:
    assert origin_allowed(origin, ALLOWED) is ok


def test_empty_allow_list_allows_everything() -> None:
    assert origin_allowed("https://anything.example", ())


@pytest.mark.parametrize(
    "bad", ["https://x.example/", "HTTPS://x.example", "x.example", "https://x.example/path", "*"]
)
def test_configured_origins_must_be_serialised(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_origin(bad)
    assert validate_origin("https://x.example:8443") == "https://x.example:8443"
    assert validate_origin("null") == "null"


PROXIES = parse_proxies(("10.0.0.1", "192.168.0.0/16"))


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.5", ["1.2.3.4"], "203.0.113.5"),  # not a proxy: header ignored (spoof)
        ("10.0.0.1", ["1.2.3.4"], "1.2.3.4"),
        ("10.0.0.1", ["6.6.6.6, 1.2.3.4"], "1.2.3.4"),  # the left part is client-written
        ("10.0.0.1", ["1.2.3.4, 192.168.1.1"], "1.2.3.4"),  # skip inner proxies
        ("10.0.0.1", ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["garbage"], "10.0.0.1"),
        ("10.0.0.1", ["::ffff:1.2.3.4"], "1.2.3.4"),
        ("::ffff:10.0.0.1", ["1.2.3.4"], "1.2.3.4"),
    ],
)
def test_forwarded_for_only_from_trusted_proxies(peer: str, xff: list[str], expected: str) -> None:
    assert client_address(peer, xff, PROXIES) == expected


def test_bad_proxy_spec_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_proxies(("not-an-address",))


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)  # one token back after half a second at 2/s
    assert not bucket.take(0.5)
    assert bucket.take(100) and bucket.take(100) and bucket.take(100)  # capped at the burst
    assert not bucket.take(100)


def test_connection_counter() -> None:
    counter = ConnectionCounter(max_total=3, max_per_address=2)
    assert counter.admit("a") and counter.admit("a")
    assert not counter.admit("a")
    assert counter.admit("b")
    assert not counter.admit("c")
    counter.release("a")
    assert counter.admit("c")
    for address in ("a", "b", "c"):
        counter.release(address)
    assert counter.total == 0 and not counter.per_address


def _entry(cid: int, state: str = '{"x":1}') -> AwarenessEntry:
    return AwarenessEntry(cid, 1, state)


def test_awareness_owners_cap_and_impersonation() -> None:
    owners = AwarenessOwners(max_ids=2)
    room = RoomName("r")
    assert owners.admit(room, "teacher", [_entry(1)]) == [_entry(1)]
    # a pupil can neither speak for the teacher's ID nor remove it
    assert owners.admit(room, "pupil", [_entry(1), _entry(1, "null"), _entry(7)]) == [_entry(7)]
    assert owners.admit(room, "pupil", [_entry(8), _entry(9)]) == [_entry(8)]
    # a removal never claims an ID
    assert owners.admit(room, "other", [_entry(5, "null")]) == []
    owners.release(room, "teacher")
    assert owners.admit(room, "newcomer", [_entry(1)]) == [_entry(1)]
    owners.release(room, "newcomer")
    owners.release(room, "pupil")
    assert owners.owners == {}


def test_redaction() -> None:
    line = "GET /room?userid=u&token=v1.abc.def.ghi HTTP/1.1 Sec-WebSocket-Protocol: yauth-v1.x.y.z"
    out = redact(line)
    assert "v1.abc" not in out and "v1.x" not in out and "userid=u" in out
    assert redact("/?token=a,b&x=1") == "/?token=…&x=1"
    label = room_label("room")
    assert redacted_target("/room?token=secret") == f"/{label}?…"
    assert redacted_target("/room") == f"/{label}"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/", "/"),
        ("/?token=a.b.c", "/?…"),
        ("/signaling?token=x", "/signaling?…"),
        ("/stream", "/stream"),
        ("/stream?binary=1", "/stream?…"),
        ("/stream/station-7", "/stream/…"),
        ("/lesson-42?userid=u&token=x", "/{lesson-42}?…"),
        ("/a/b/c", "/{a/b/c}"),
        ("relative", "/{relative}"),
        ("/t", "/{t}"),  # a room named t, not a token prefix
        ("/t/v1.a.b.c/Lab1?userid=u", "/t/…/{Lab1}?…"),
        ("/t/v1.a.b.c,v1.d.e.f", "/t/…"),
        ("/t/v1.a.b.c?x=1", "/t/…?…"),
        ("/t/v1.a.b.c/", "/t/…/"),
        ("/t/v1.a.b.c/stream", "/t/…/stream"),
        ("/t/v1.a.b.c/t/x", "/t/…/{t/x}"),
    ],
)
def test_redacted_target_keeps_the_door_and_labels_the_room(target: str, expected: str) -> None:
    for room in ("lesson-42", "a/b/c", "relative", "t", "Lab1", "t/x"):
        expected = expected.replace("{" + room + "}", room_label(room))
    assert redacted_target(target) == expected


def test_room_labels_are_stable_distinct_and_hide_the_name() -> None:
    names = ["lesson", "Lesson", "lesson ", "a" * 256, "ü"]
    labels = [room_label(name) for name in names]
    assert labels == [room_label(name) for name in names]  # stable within the process
    assert len(set(labels)) == len(names)
    for name, label in zip(names, labels, strict=True):
        assert label.startswith("#") and len(label) == 13 and name not in label


def test_redaction_of_path_tokens_in_free_text() -> None:
    line = "GET /t/v1.abc.def.ghi/Lab1?userid=u HTTP/1.1"
    assert redact(line) == "GET /t/…/Lab1?userid=u HTTP/1.1"
    url = "wss://relay.example/t/v1.abc.def.ghi,v1.x.y.z/Lab1?token=v1.q.r.s"
    assert redact(url) == "wss://relay.example/t/…/Lab1?token=…"
    assert redact("y-websocket wss://h/t/v1.a.b.c: 401") == "y-websocket wss://h/t/…: 401"


def test_settings_do_not_print_their_secrets() -> None:
    from edrys_relay.config import Settings

    assert "hunter2-very-secret" not in repr(Settings(auth_secrets=("hunter2-very-secret",)))
