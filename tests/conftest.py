"""What every test of every tier gets: a check that it leaves no asyncio task pending and no
thread running behind it.

A leaked task or thread is a test that did not wait for what it started: it passes now and
makes a later test flaky (a server still answering, a watcher still writing, a port still held).
So each test is checked on its way out, and fails naming what it left.

A thread may outlive its test only where a fixture wider than the test owns it, named in
:data:`THREAD_OWNERS` with the reason; those threads must then end when that fixture does.

Also here: Debian's chromium driven by Playwright (the console's browser tests and the e2e
tier's cross-origin fetch), and the local stacks (``tests/local_stack.py``: real Ray Serve with
vLLM CPU or MLX CPU, and ``modelgrid up`` of the mixed example), each kind started once a session
and shared by the integration and e2e tiers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from local_stack import Stack, Stacks, tiny_model_dir
from mixed_support import Mixed, mixed_stack
from playwright.sync_api import Browser, Playwright, sync_playwright

THREAD_GRACE_S = 2.0
"""How long a thread that is finishing (an executor worker told to stop, a server's last
connection) has to end after its test."""

THREAD_OWNERS: dict[str, str] = {
    "playwright": "Playwright's sync API runs an event loop of its own for the module's browser"
    " tests; that loop's executor and child-watcher threads start when a test first needs them"
    " and end when the fixture closes the loop",
}
"""Fixtures (by name) whose threads may outlive the tests that use them -> why."""

_THREADS_BEFORE = pytest.StashKey[set[threading.Thread]]()
_owned: dict[str, set[threading.Thread]] = {}
"""Threads that outlived a test, by the fixture in :data:`THREAD_OWNERS` that owns them."""


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
    left = _still_running(lambda: set(threading.enumerate()) - before)
    owner = next(
        (name for name in THREAD_OWNERS if name in getattr(item, "fixturenames", ())), None
    )
    if left and owner is not None:
        _owned.setdefault(owner, set()).update(left)
    elif left:
        pytest.fail(f"the test left {len(left)} thread(s) running: {_describe(left)}")
    return result


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[object]) -> None:
    """The threads a fixture in :data:`THREAD_OWNERS` owns must end with it."""
    threads = _owned.pop(fixturedef.argname, set())
    if left := _still_running(lambda: threads):
        pytest.fail(f"{fixturedef.argname} left {len(left)} thread(s) running: {_describe(left)}")


def _still_running(
    threads: Callable[[], set[threading.Thread]],
) -> set[threading.Thread]:
    """``threads()`` still alive after at most :data:`THREAD_GRACE_S`."""
    deadline = time.monotonic() + THREAD_GRACE_S
    while (alive := {t for t in threads() if t.is_alive()}) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


def _describe(threads: set[threading.Thread]) -> str:
    return ", ".join(
        sorted(f"{t.name!r} ({'daemon' if t.daemon else 'non-daemon'})" for t in threads)
    )


@pytest.fixture(autouse=True)
def _no_leaked_tasks(request: pytest.FixtureRequest) -> None:
    """Check an asyncio test's loop for pending tasks on its way out. Sync tests are left out:
    they get no loop from pytest-asyncio, and one that drives a loop of its own (Playwright's
    sync API does) must not have another running beside it."""
    if request.node.get_closest_marker("asyncio") is not None:
        request.getfixturevalue("_pending_tasks_fail_the_test")


@pytest.fixture
async def _pending_tasks_fail_the_test() -> AsyncIterator[None]:
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


# ---- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's sync API, for one module at a time: while it runs, its event loop is the
    thread's running loop, and async tests (pytest-asyncio) cannot start theirs."""
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Debian chromium; Playwright never downloads a browser of its own here."""
    executable = os.environ.get("MODELGRID_CHROMIUM") or shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium not found: install Debian's 'chromium' package (.ci/run does)")
    browser = playwright.chromium.launch(executable_path=executable, headless=True)
    yield browser
    browser.close()


# ---- the local stack (tests/local_stack.py) ---------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny model (generated once, cached between sessions)."""
    return tiny_model_dir()


@pytest.fixture(scope="session")
def stacks(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    """The session's stacks; on teardown, fails if one crashed or left a process behind."""
    manager = Stacks(tiny_model, tmp_path_factory.mktemp("stacks"))
    try:
        yield manager
    finally:
        manager.stop()
    assert not manager.problems, "; ".join(manager.problems)


@pytest.fixture
def stack(stacks: Stacks) -> Stack:
    """The chat stack: the tiny model as a generative model, with an alias."""
    return stacks.get("chat")


@pytest.fixture
def embedding_stack(stacks: Stacks) -> Stack:
    """The tiny model served as an embedding model."""
    return stacks.get("embed")


@pytest.fixture
def mlx_stack(stacks: Stacks) -> Stack:
    """The chat stack's model, name and alias on the MLX engine (an Apple pool run on CPU)."""
    return stacks.get("mlx")


@pytest.fixture
def mlx_pools_stack(stacks: Stacks) -> Stack:
    """One model in two MLX pools: two Serve applications, at ``/pools/mac-a`` and ``/pools/mac-b``."""
    return stacks.get("mlx-pools")


@pytest.fixture(scope="session")
def mixed(stacks: Stacks, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mixed]:
    """``modelgrid up examples/mixed-tiny.yaml``: one name over a vLLM and an MLX pool behind
    the gateway; started after the shared stacks stopped (two vLLM engines on this machine at
    once would starve each other)."""
    stacks.stop()
    with mixed_stack(tmp_path_factory.mktemp("mixed")) as stack:
        yield stack


def stack_order(item: pytest.Item) -> int:
    """Which stack a test needs, as a sort key: the MLX ones first (seconds to start), then the
    vLLM chat stack, then the embedding stack, then the mixed stack (the e2e tests before the
    integration ones, which stop one of its pools); so each kind starts once a session."""
    fixtures = getattr(item, "fixturenames", ())
    callspec = getattr(item, "callspec", None)
    if "mixed" in fixtures:
        return 4 if item.get_closest_marker("e2e") else 5
    if "mlx_pools_stack" in fixtures:
        return 0
    if "mlx_stack" in fixtures or (callspec and callspec.params.get("engine") == "mlx"):
        return 1
    return 3 if "embedding_stack" in fixtures else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order tests by the stack they use (a stable sort: file order otherwise)."""
    items.sort(key=stack_order)
