"""Fixtures of the serving tests (the shared stacks are in ``tests/conftest.py``).

Here ``stack`` is parametrized over the engines: one OpenAI test suite runs against vLLM and
against MLX, through the same Serve replica code. Where MLX behaves differently, the test
asserts the difference (see ``serving_support.refused_by_mlx``) and docs/serving.md lists it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from local_stack import Stack, Stacks

ENGINES = ("vllm", "mlx")


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The engine of the stack under test."""
    return str(request.param)


@pytest.fixture
def stack(engine: str, stacks: Stacks) -> Stack:
    """The chat stack on ``engine``: the tiny model, its name and an alias."""
    return stacks.get("chat" if engine == "vllm" else "mlx")


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        yield client
