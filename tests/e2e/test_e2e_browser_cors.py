"""A browser application calling the gateway from another origin: a page served on another port
(headless Debian chromium, driven by Playwright) ``fetch``es a chat completion from the gateway
of ``modelgrid up``, once per pool and once through the mixed name.

``modelgrid up`` allows the origins ``http://localhost:*`` and ``http://127.0.0.1:*``
(docs/gateway.md, CORS): the page at ``http://127.0.0.1:<port>`` is answered (the browser sends
the preflight a JSON POST needs, then the request), the same page at ``http://127.0.0.2:<port>``
(another loopback address: another origin, not allowed) is refused by the browser itself, and
its request never reaches a pool.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from e2e_support import ANSWER_TOKENS, QUESTION, Target, served_since
from mixed_support import requests_per_pool
from playwright.sync_api import Browser

pytestmark = pytest.mark.e2e

ALLOWED_HOST, OTHER_HOST = "127.0.0.1", "127.0.0.2"
PAGE = b"<!doctype html><title>an app on another origin</title><p>app</p>"
FETCH = """async ([url, headers, body]) => {
  try {
    const reply = await fetch(url, {
      method: "POST",
      headers: {"content-type": "application/json", ...headers},
      body: JSON.stringify(body),
    });
    return {status: reply.status, body: await reply.json()};
  } catch (error) {
    return {error: String(error)};
  }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *_: Any) -> None:
        """Quiet: pytest shows the test's output, not the page server's."""


@pytest.fixture
def app_origin() -> Iterator[dict[str, str]]:
    """The app's page, served on a port of each host: host -> the page's URL."""
    servers = {host: ThreadingHTTPServer((host, 0), _Page) for host in (ALLOWED_HOST, OTHER_HOST)}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    try:
        yield {host: f"http://{host}:{s.server_address[1]}/" for host, s in servers.items()}
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join()


def fetch_from(browser: Browser, page_url: str, target: Target) -> dict[str, Any]:
    """What the page at ``page_url`` gets when it ``fetch``es a chat completion of ``target``."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(page_url)
        body = {
            "model": target.model,
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": ANSWER_TOKENS,
            "ignore_eos": True,
        }
        url = f"{target.base_url}/chat/completions"
        return dict(page.evaluate(FETCH, [url, target.headers, body]))
    finally:
        context.close()


def test_e2e_browser_fetch_from_an_allowed_origin_is_answered(
    browser: Browser, app_origin: dict[str, str], target: Target
) -> None:
    seen = fetch_from(browser, app_origin[ALLOWED_HOST], target)
    assert seen.get("status") == 200, seen
    (choice,) = seen["body"]["choices"]
    assert choice["message"]["content"] and choice["finish_reason"] == "length"


def test_e2e_browser_fetch_from_another_origin_is_refused(
    browser: Browser, app_origin: dict[str, str], target: Target
) -> None:
    before = requests_per_pool(target.mixed)
    seen = fetch_from(browser, app_origin[OTHER_HOST], target)
    assert "error" in seen and "Failed to fetch" in seen["error"], seen
    assert not any(served_since(target.mixed, before).values())  # no pool saw the request
