"""The MLX engine of an Apple pool: one model, tokens in, text and tool calls out, over HTTP.

``python -m modelgrid_serving.mlx_generation_server --model DIR --host 127.0.0.1 --port N`` runs
beside the pool's replicas: the pod's ``mlx-server`` container in a cluster, a child process of
``modelgrid up`` locally (:mod:`.mlx_sidecar`). One code path for both.

Why our own server and not mlx-lm's (``mlx_lm.server``, which this replaced): mlx-lm's server
takes no grammar, so it cannot hold a reply to a JSON schema (``response_format``, a named or
``required`` ``tool_choice``); it also rebuilt OpenAI's shapes that the replica then had to
normalise. Here the split is clean: the replica (:mod:`.engines.mlx`) owns the OpenAI protocol
(chat template, limits, ``n`` choices, tool-call shapes, usage) and sends the prompt's token ids;
this server owns only what needs MLX (:mod:`.mlx_generation`: continuous batching, sampling,
the grammar, detokenising, stop words, mlx-lm's tool-call parser for the model).

``POST /v1/generate`` answers NDJSON, one object a line: ``{"text": ...}`` content,
``{"tool_call": {"name", "arguments"}}`` a parsed call, and last ``{"finish_reason",
"completion_tokens"}`` (or ``{"error": ...}`` if generation failed after it began). A request
it refuses is a 400 with ``{"error": message, "field": the body's field}``. ``GET /health`` is
200 once the model is loaded, while generation runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any

from .json_handler import JSONRequestHandler
from .mlx_generation import BadRequest, Engine, Generation, Scheduler

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
"""A prompt of a million token ids is about 8 MB of JSON; anything far larger is refused."""


class Handler(JSONRequestHandler):
    """``GET /health`` and ``POST /v1/generate`` (see the module docstring)."""

    engine: Engine
    scheduler: Scheduler
    protocol_version = "HTTP/1.0"  # the reply ends when the connection closes: no chunking

    def do_GET(self) -> None:
        if self.path != "/health":
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        if not self.scheduler.alive:
            self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "generation has stopped"})
            return
        self.send_json(HTTPStatus.OK, {"status": "ok"})

    def do_POST(self) -> None:
        if self.path != "/v1/generate":
            self.send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        try:
            request = Generation.from_body(self._body(), self.engine.vocab_size)
            matcher = self.engine.check(request)
        except BadRequest as exc:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc), "field": exc.field})
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        turn = self.scheduler.submit(request, matcher)
        try:
            while (line := turn.out.get()) is not None:
                self.wfile.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            logger.info("the replica went away mid-generation; generation stopped")
            turn.cancelled.set()

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            raise BadRequest("a Content-Length header is required") from None
        if not 0 < length <= MAX_BODY_BYTES:
            raise BadRequest(f"the body must be 1 to {MAX_BODY_BYTES} bytes")
        try:
            return json.loads(self.rfile.read(length))
        except ValueError as exc:
            raise BadRequest(f"the body is not JSON: {exc}") from None

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def main(argv: list[str] | None = None) -> None:
    """Load the model, then serve until stopped (SIGTERM ends the process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model directory or Hugging Face id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Handler.engine = Engine(args.model)
    Handler.scheduler = Scheduler(Handler.engine)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    logger.info("MLX generation server for %s on %s:%d", args.model, args.host, args.port)
    server.serve_forever()


if __name__ == "__main__":
    main()
