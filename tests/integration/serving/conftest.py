"""Fixtures of the serving tests (the shared stack is in ``tests/integration/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from local_stack import Stack


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        yield client
