"""Waiting in tests: poll a condition under a deadline, and fail saying what was awaited.

The one way a test waits for something to happen (never a fixed sleep standing for it).
``wait_for`` serves synchronous tests and fixtures; ``eventually`` is the same inside an event
loop: it yields to the loop between tries, so the code under test runs, and awaits the check's
result when the check is a coroutine function.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest

INTERVAL_S = 0.05


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Call ``check`` until it returns something truthy and return that; fail after ``timeout``
    seconds, naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            _fail(timeout, what, result)
        time.sleep(INTERVAL_S)


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, what: str) -> Any:
    """:func:`wait_for` inside an event loop; ``check`` may return an awaitable."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            _fail(timeout, what, result)
        await asyncio.sleep(INTERVAL_S)


def _fail(timeout: float, what: str, last: Any) -> None:
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last seen: {last!r:.300})")
