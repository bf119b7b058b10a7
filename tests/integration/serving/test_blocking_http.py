"""``blocking_http``: what ``modelgrid up`` waits and warms up with, against a real HTTP server
(the standard library's, in a thread): the answer's status and text, a JSON body sent as JSON,
and ``NoAnswer`` for a closed port and for a server that answers too late."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from modelgrid_serving import blocking_http

pytestmark = pytest.mark.integration

SLOW_S = 1.0


class _Handler(BaseHTTPRequestHandler):
    release = threading.Event()
    """Ends the wait of ``/slow`` (at teardown: its client has long gone by then)."""

    def do_GET(self) -> None:
        if self.path == "/slow":
            self.release.wait(SLOW_S)
        self._answer(200 if self.path != "/missing" else 404, b"ok")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        echoed = {"content_type": self.headers["content-type"], "json": json.loads(body)}
        self._answer(201, json.dumps(echoed).encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # /slow: the client gave up
            pass

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.release.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = False  # server_close() joins every handler: none outlives the test
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Handler.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_blocking_http_get_returns_status_and_text(server: str) -> None:
    assert blocking_http.get(f"{server}/health", timeout_s=5) == blocking_http.Reply(200, "ok")
    assert blocking_http.get(f"{server}/missing", timeout_s=5).status == 404


def test_blocking_http_answers_ok_only_for_a_200_in_time(server: str) -> None:
    assert blocking_http.answers_ok(f"{server}/health", timeout_s=5)
    assert not blocking_http.answers_ok(f"{server}/missing", timeout_s=5)
    assert not blocking_http.answers_ok(f"{server}/slow", timeout_s=SLOW_S / 4)


def test_blocking_http_post_json_sends_a_json_body(server: str) -> None:
    reply = blocking_http.post_json(f"{server}/v1/chat", {"model": "tiny", "n": 1}, timeout_s=5)
    assert reply.status == 201
    echoed = json.loads(reply.text)
    assert echoed["content_type"] == "application/json"
    assert echoed["json"] == {"model": "tiny", "n": 1}


def test_blocking_http_closed_port_is_no_answer() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(blocking_http.NoAnswer, match=f"127.0.0.1:{port}"):
        blocking_http.get(f"http://127.0.0.1:{port}/health", timeout_s=5)


def test_blocking_http_late_answer_is_no_answer(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(blocking_http.NoAnswer):
        blocking_http.get(f"{server}/slow", timeout_s=SLOW_S / 4)
    assert time.monotonic() - started < SLOW_S
