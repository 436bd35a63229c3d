"""Fixtures for the classroom page tests (see helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .helpers import launched_browser, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with running_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_browser() as b:
        yield b
