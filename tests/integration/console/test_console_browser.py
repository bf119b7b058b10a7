"""The web console in headless chromium against real gateways and real mlx_lm.server backends:
the model list, live figures, a streamed chat, a backend going away, keys, a phone screen.

Every tab fails its test if the browser console logged an error; screenshots of each page are
saved for people to look at (see conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from console_support import (
    KEY,
    PHONE,
    ConsoleStack,
    Tab,
    shoot,
    without_end_of_sequence,
)
from local_stack import throttled
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.integration

UNAVAILABLE_WITHIN_S = 10.0
"""The page polls every 1.5 s and the gateway probes every 0.5 s (two misses take a backend out)."""


def figure(page: Page, model: str, key: str) -> str:
    return page.locator(f'article[data-model="{model}"] [data-figure="{key}"] dd').inner_text()


def no_horizontal_overflow(page: Page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"page is {widths[0]} px wide in a {widths[1]} px viewport"


def chat(page: Page, prompt: str, *, max_tokens: int) -> list[str]:
    """Send ``prompt`` from the playground; returns the reply's text at every DOM update."""
    expect(page.locator('#model option[value="tiny"]')).to_have_count(1, timeout=15_000)
    page.select_option("#model", "tiny")
    page.fill("#temperature", "0.8")
    page.fill("#max-tokens", str(max_tokens))
    page.evaluate(
        """() => {
          window.replies = [];
          const transcript = document.getElementById('transcript');
          new MutationObserver(() => {
            const replies = transcript.querySelectorAll('.msg-assistant');
            if (replies.length) window.replies.push(replies[replies.length - 1].textContent);
          }).observe(transcript, {childList: true, subtree: true, characterData: true});
        }"""
    )
    page.fill("#prompt", prompt)
    page.click("#send")
    expect(page.locator("#usage")).to_contain_text("completion tokens", timeout=60_000)
    return [text for text in page.evaluate("window.replies") if text]


def test_models_page_shows_the_model_ready_and_live_figures_update_without_reload(
    console_stack: ConsoleStack, open_tab: Callable[..., Tab], artifacts: Path
) -> None:
    tab = open_tab(console_stack.open.url + "/ui")  # the redirect to /ui/
    page = tab.page
    card = page.locator('article[data-model="tiny"]')
    expect(card).to_have_attribute("data-state", "Ready", timeout=15_000)
    expect(card.locator(".state")).to_have_text("Ready")
    expect(card).to_contain_text("also tiny-chat")
    expect(card.locator("tbody td")).to_have_text(["mac", "—", "—", "1/1"])
    before = int(re.search(r"\((\d+)\)", figure(page, "tiny", "requests")).group(1))  # type: ignore[union-attr]
    page.evaluate("window.notReloaded = true")

    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    for stream in (False, True, True):
        reply = httpx.post(
            console_stack.open.v1 + "/chat/completions", json={**body, "stream": stream}, timeout=60
        )
        assert reply.status_code == 200

    requests = card.locator('[data-figure="requests"] dd')
    expect(requests).to_contain_text(f"({before + 3})", timeout=10_000)
    assert re.fullmatch(r"\d+ ms / \d+ ms", figure(page, "tiny", "ttft")), figure(
        page, "tiny", "ttft"
    )
    assert re.fullmatch(r"\d+ ms / \d+ ms", figure(page, "tiny", "latency"))
    assert float(figure(page, "tiny", "tokens")) > 0
    assert page.evaluate("window.notReloaded") is True
    shoot(tab, artifacts, "models-1280")


def test_playground_streams_a_reply_shows_usage_and_working_snippets(
    console_stack: ConsoleStack, open_tab: Callable[..., Tab], artifacts: Path, tiny_model: Path
) -> None:
    tab = open_tab(console_stack.open.url + "/ui/#playground")
    page = tab.page
    without_end_of_sequence(page, tiny_model)
    updates = chat(page, "Tell me a long story", max_tokens=400)

    final = page.locator("#transcript .msg-assistant").last.inner_text()
    assert final, "no reply text"
    assert len(set(updates)) > 1, f"the reply arrived in one piece: {len(updates)} update(s)"
    assert all(final.startswith(text.strip()) for text in updates[:-1])  # it grew as it came
    usage = page.locator("#usage").inner_text()
    # The console writes a time under a second in ms and one from a second up in s (its ``ms``
    # formatter): on a busy machine the first token of this tiny model can take seconds.
    first_token = r"first token (\d+ ms|\d+\.\d\d s)"
    assert re.search(rf"\d+ prompt \+ \d+ completion tokens · {first_token}", usage), usage

    curl = page.locator("#curl").inner_text()
    assert f"{console_stack.open.v1}/chat/completions" in curl and "Authorization" not in curl
    assert '"stream_options": {\n    "include_usage": true' in curl
    snippet = page.locator("#python").inner_text()
    assert "Tell me a long story" in snippet and "max_tokens=400" in snippet
    ran = subprocess.run(  # the OpenAI SDK snippet, as shown, against the same gateway
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "completion_tokens=" in ran.stdout  # the usage chunk arrived
    shoot(tab, artifacts, "playground-1280")


def test_stop_cancels_a_streaming_reply(
    console_stack: ConsoleStack, open_tab: Callable[..., Tab], tiny_model: Path
) -> None:
    tab = open_tab(console_stack.open.url + "/ui/#playground")
    page = tab.page
    without_end_of_sequence(page, tiny_model)
    expect(page.locator('#model option[value="tiny"]')).to_have_count(1, timeout=15_000)
    page.fill("#max-tokens", "1800")
    page.fill("#prompt", "Go on and on")
    # The reply runs to 1,800 tokens and the engine runs 10% of the time while it streams, so
    # the reply is still streaming when Stop is clicked, however slowly the browser gets the CPU.
    assert console_stack.tiny.proc is not None
    with throttled(console_stack.tiny.proc.pid):
        page.click("#send")
        reply = page.locator("#transcript .msg-assistant").last
        expect(reply).not_to_have_text("", timeout=30_000)
        assert page.locator("#stop").is_enabled(), (
            "the reply ended before Stop was clicked: "
            f"error {page.locator('#chat-error').inner_text()!r}, "
            f"usage {page.locator('#usage').inner_text()!r}, {len(reply.inner_text())} characters"
        )
        page.click("#stop")
    expect(page.locator("#chat-error")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#stop")).to_be_disabled()
    assert "completion tokens" not in page.locator("#usage").inner_text()  # no usage: cut short


def test_a_stopped_backend_shows_its_model_unavailable_within_seconds(
    console_stack: ConsoleStack, open_tab: Callable[..., Tab], artifacts: Path
) -> None:
    tab = open_tab(console_stack.open.url + "/ui/")
    page = tab.page
    card = page.locator('article[data-model="tiny-victim"]')
    expect(card).to_have_attribute("data-state", "Ready", timeout=15_000)
    console_stack.victim.stop()
    stopped = time.monotonic()
    expect(card).to_have_attribute("data-state", "Unavailable", timeout=UNAVAILABLE_WITHIN_S * 1000)
    took = time.monotonic() - stopped
    expect(card).to_contain_text("1 of 1 backends not answering")
    expect(card.locator("tbody tr")).to_contain_text("0/1")
    expect(page.locator('article[data-model="tiny"]')).to_have_attribute("data-state", "Ready")
    page.goto(console_stack.open.url + "/ui/#playground")  # unavailable models cannot be picked
    expect(page.locator('#model option[value="tiny-victim"]')).to_be_disabled(timeout=5_000)
    page.goto(console_stack.open.url + "/ui/#models")
    expect(card).to_have_attribute("data-state", "Unavailable", timeout=5_000)
    shoot(tab, artifacts, "models-backend-down-1280")
    print(f"tiny-victim showed Unavailable {took:.1f} s after its backend stopped")


def test_with_keys_on_the_page_asks_for_a_key_and_shows_nothing_without_one(
    console_stack: ConsoleStack, open_tab: Callable[..., Tab], artifacts: Path
) -> None:
    tab = open_tab(console_stack.keyed.url + "/ui/")
    page = tab.page
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#models")).to_be_hidden()
    expect(page.locator("#playground")).to_be_hidden()
    page.wait_for_timeout(2000)  # more than one poll interval: still nothing fetched
    assert page.locator("#model-list > *").count() == 0
    assert "tiny" not in page.content()
    assert [u for u in tab.requests if "/v1/" in u] == []  # no data was even asked for
    shoot(tab, artifacts, "login-1280")

    page.fill("#key", KEY)
    page.click("#key-form button[type=submit]")
    card = page.locator('article[data-model="tiny"]')
    expect(card).to_have_attribute("data-state", "Ready", timeout=10_000)
    expect(page.locator("#login")).to_be_hidden()
    storage = page.evaluate(
        "[sessionStorage.getItem('modelgrid.key'), localStorage.length, document.cookie]"
    )
    assert storage == [KEY, 0, ""]  # the browser session only
    page.goto(console_stack.keyed.url + "/ui/#playground")
    assert "$MODELGRID_API_KEY" in page.locator("#curl").inner_text()
    assert KEY not in page.locator("#curl").inner_text() + page.locator("#python").inner_text()
    shoot(tab, artifacts, "playground-keyed-1280")

    page.click("#forget")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#model-list > *")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0


def test_phone_width_renders_without_horizontal_overflow(
    console_stack: ConsoleStack, open_tab: Callable[..., Tab], artifacts: Path
) -> None:
    tab = open_tab(console_stack.open.url + "/ui/", viewport=PHONE)
    page = tab.page
    expect(page.locator('article[data-model="tiny"]')).to_have_attribute(
        "data-state", "Ready", timeout=15_000
    )
    no_horizontal_overflow(page)
    shoot(tab, artifacts, "models-390")
    page.click("#nav-playground")
    chat(page, "Hello", max_tokens=64)
    no_horizontal_overflow(page)
    shoot(tab, artifacts, "playground-390")
    keyed = open_tab(console_stack.keyed.url + "/ui/", viewport=PHONE)
    expect(keyed.page.locator("#login")).to_be_visible()
    no_horizontal_overflow(keyed.page)
    shoot(keyed, artifacts, "login-390")
