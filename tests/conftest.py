"""What every test of every tier gets: a check that it leaves no asyncio task pending and no
thread running behind it.

A leaked task or thread is a test that did not wait for what it started: it passes now and
makes a later test flaky (a server still answering, a watcher still writing, a port still held).
So each test is checked on its way out, and fails naming what it left.

Only the threads of session-scoped fixtures outlive a test by design; each fixture that may own
such threads is named in :data:`SESSION_THREAD_OWNERS` with the reason, and its threads are
recognised by having been started while that fixture was set up.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

THREAD_GRACE_S = 2.0
"""How long a thread that is finishing (an executor worker told to stop, a server's last
connection) has to end after its test."""

SESSION_THREAD_OWNERS: dict[str, str] = {}
"""Session-scoped fixtures whose threads outlive each test, each with why."""

_owned: dict[threading.Thread, str] = {}
"""Threads started while a session-scoped fixture was set up -> that fixture's name."""


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any]) -> Iterator[None]:
    """Note the threads a session-scoped fixture starts: they belong to the session."""
    if fixturedef.scope != "session":
        return (yield)
    before = set(threading.enumerate())
    try:
        return (yield)
    finally:
        for thread in set(threading.enumerate()) - before:
            _owned[thread] = fixturedef.argname


_THREADS_BEFORE = pytest.StashKey[set[threading.Thread]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Note the threads alive before the test's fixtures are set up."""
    item.stash[_THREADS_BEFORE] = set(threading.enumerate())
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Fail a test that leaves a thread running (after :data:`THREAD_GRACE_S`), checked once
    every fixture of the test has been torn down (its event loop and that loop's executor too).
    """
    result = yield
    before = item.stash.get(_THREADS_BEFORE, set())
    deadline = time.monotonic() + THREAD_GRACE_S
    while (left := _leaked_threads(before)) and time.monotonic() < deadline:
        time.sleep(0.02)
    if left:
        pytest.fail(f"the test left {len(left)} thread(s) running: " + ", ".join(left))
    return result


def _leaked_threads(before: set[threading.Thread]) -> list[str]:
    leaked = []
    for thread in threading.enumerate():
        if thread in before or not thread.is_alive():
            continue
        owner = _owned.get(thread)
        if owner is not None and owner in SESSION_THREAD_OWNERS:
            continue
        kind = "daemon" if thread.daemon else "non-daemon"
        started_by = f", started by session fixture {owner!r} (not allowed)" if owner else ""
        leaked.append(f"{thread.name!r} ({kind}{started_by})")
    return leaked


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves a task pending on its event loop."""
    loop = asyncio.get_running_loop()
    before = asyncio.all_tasks(loop)
    yield
    await asyncio.sleep(0)  # let tasks that were just cancelled or finished settle
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks(loop) - before if t is not current and not t.done()]
    for task in left:
        task.cancel()  # so the loop closes cleanly; the test fails anyway
    if left:
        names = ", ".join(f"{t.get_name()!r} ({t.get_coro()!r:.120})" for t in left)
        pytest.fail(f"the test left {len(left)} asyncio task(s) pending: {names}")
