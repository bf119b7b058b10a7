"""Fixtures of the console tests: real gateways in front of real mlx_lm.server backends on the
tiny model (the gateway tests' helpers), and tabs of Debian's chromium (``browser``, in
``tests/conftest.py``) driven by Playwright.

Screenshots go to ``$MODELGRID_ARTIFACTS/console/`` (default: the git-ignored ``artifacts/``
folder at the repository root), one PNG per page and width, overwritten by each run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console_support import DESKTOP, KEY, ConsoleStack, Tab, listed
from integration.gateway.gateway_support import Servers, backend, wait_for
from modelgrid_serving.gateway.auth import hash_key
from playwright.sync_api import Browser, ConsoleMessage

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where the screenshots go."""
    root = Path(os.environ.get("MODELGRID_ARTIFACTS") or REPO / "artifacts")
    path = root / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture()
def open_tab(browser: Browser, artifacts: Path) -> Iterator[Callable[..., Tab]]:
    """``open_tab(url, viewport=DESKTOP)``: a fresh browser context (own sessionStorage) on
    ``url``. At teardown: no tab may have logged a console error."""
    tabs: list[Tab] = []

    def open_(url: str, *, viewport: dict[str, int] = DESKTOP) -> Tab:
        context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        tab = Tab(context.new_page())

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                tab.errors.append(f"{message.text} at {message.location}")

        tab.page.on("console", on_console)
        tab.page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
        tab.page.on("request", lambda request: tab.requests.append(request.url))
        tab.page.goto(url)
        tabs.append(tab)
        return tab

    yield open_
    for tab in tabs:
        tab.page.context.close()
    for tab in tabs:
        assert tab.errors == [], f"browser console errors: {tab.errors}"


@pytest.fixture(scope="session")
def console_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    with Servers(tmp_path_factory.mktemp("console")) as servers:
        yield servers


@pytest.fixture(scope="session")
def console_stack(console_servers: Servers, tiny_model: Path) -> ConsoleStack:
    tiny = console_servers.mlx(tiny_model, name="mlx-console")
    victim = console_servers.mlx(tiny_model, name="mlx-victim")
    tiny.wait_ready()
    victim.wait_ready()
    models = [
        {"name": "tiny", "aliases": ["tiny-chat"], "backends": [backend(tiny, tiny_model, "mac")]},
        {"name": "tiny-victim", "backends": [backend(victim, tiny_model, "spare")]},
    ]
    limits = {"health_interval_s": 0.5}
    # the strictest CORS there is with the layer on: one foreign origin, not the console's own
    # (the console is served by the gateway: same origin, it needs no CORS), so every console
    # test also shows that the console keeps working under it
    strict = {"allow_origins": ["https://app.example.com"]}
    open_gw = console_servers.gateway(
        {"models": models, "limits": limits, "cors": strict}, name="console-open"
    )
    keys = [{"name": "console", "sha256": hash_key(KEY)}]
    keyed = console_servers.gateway(
        {
            "models": models[:1],
            "limits": limits,
            "auth": {"enabled": True, "keys": keys},
            "cors": strict,
        },
        name="console-keyed",
    )
    wait_for(
        lambda: listed(open_gw) == {"tiny", "tiny-chat", "tiny-victim"},
        timeout=30,
        what="the open gateway to list both models",
    )
    wait_for(
        lambda: listed(keyed, KEY) == {"tiny", "tiny-chat"},
        timeout=30,
        what="the keyed gateway to list tiny",
    )
    return ConsoleStack(tiny, victim, open_gw, keyed)
