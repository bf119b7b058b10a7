"""Helpers of the console tests (fixtures in conftest.py): a browser tab that records its
console errors, screenshots, and the stack the tests run against."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from integration.gateway.gateway_support import Gateway, Server
from playwright.sync_api import Page, Route

KEY = "sk-console-test-0001"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Tab:
    """A page with every console error and uncaught exception it raised, and its requests."""

    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def shoot(tab: Tab, artifacts: Path, name: str) -> Path:
    """Save a full-page screenshot as ``<artifacts>/<name>.png``."""
    path = artifacts / f"{name}.png"
    tab.page.screenshot(path=str(path), full_page=True)
    return path


@dataclass(frozen=True)
class ConsoleStack:
    """Two mlx servers (``tiny`` and ``tiny-victim``) behind an open and a keyed gateway."""

    tiny: Server
    victim: Server
    open: Gateway
    keyed: Gateway


def listed(gw: Gateway, key: str | None = None) -> set[str]:
    """The served names ``gw`` lists (to ``key``)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return {m["id"] for m in httpx.get(gw.v1 + "/models", headers=headers).json()["data"]}


def without_end_of_sequence(page: Page, model_dir: Path) -> None:
    """Add a ``logit_bias`` that bans the model's end-of-sequence token to every chat request the
    page sends, so that replies run to ``max_tokens``.

    The tiny model has random weights and 512 tokens: it draws end-of-sequence about once in 500
    tokens, at any point, so without this a reply the test means to stop (or watch grow) can end
    after a few tokens. The page itself is unchanged; only its request body is, in flight.
    """
    eos = json.loads((model_dir / "generation_config.json").read_text())["eos_token_id"]
    banned = {str(token): -100 for token in (eos if isinstance(eos, list) else [eos])}

    def ban(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, "logit_bias": banned}))

    page.route("**/v1/chat/completions", ban)
