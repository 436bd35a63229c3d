"""``#comm=`` values: vectors produced by npm lz-string 1.5.0 (protocols.md §5.2)."""

import pytest

from edrys_relay.protocol.edrys_link import comm_parameter
from edrys_relay.protocol.lzstring import compress_to_encoded_uri_component


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "Q"),
        ("a", "IZA"),
        (
            '{"m":"Websocket","w":"ws://localhost:1234"}',
            "N4IgtiBcIOoKYCMDOB7AxgazgFxAGhAHcoilIB6cgG3QEMqALFJbSARgCYBmAFhAF8gA",
        ),
    ],
)
def test_known_vectors(text: str, expected: str) -> None:
    assert compress_to_encoded_uri_component(text) == expected


def test_comm_parameters_match_edrys() -> None:
    assert comm_parameter("WebRTC", signaling=["wss://relay.school.example"]) == (
        "N4IgtiBcIOoKYCMBKAVAwiANCAzlA2iAO446QD05ATnADYCGAngHQ4DGAFgPZe3NwAPemAAOtOCAC6AXyA"
    )
    assert comm_parameter("Websocket", websocket_url="wss://relay.school.example") == (
        "N4IgtiBcIOoKYCMDOB7AxgazgFxAGhAHcoiklIB6CgJzgBsBDATwDok0ALFFOluADwZgADnTggAvkA"
    )


def test_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError):
        comm_parameter("Carrier pigeon")
