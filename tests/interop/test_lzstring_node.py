"""Our LZString compressor gives exactly npm lz-string's output on arbitrary text."""

import json
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edrys_relay.protocol.lzstring import compress_to_encoded_uri_component
from tests.interop.node_agent import HERE, require_node_modules


def npm_compress(texts: list[str]) -> list[str]:
    result = subprocess.run(
        ["node", "js/lzstring_batch.mjs"],
        cwd=HERE,
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(result.stdout))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(max_size=400), min_size=20, max_size=40))
def test_matches_npm_lz_string(texts: list[str]) -> None:
    require_node_modules()
    ours = [compress_to_encoded_uri_component(t) for t in texts]
    assert ours == npm_compress(texts)
