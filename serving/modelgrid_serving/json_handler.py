"""A standard-library HTTP request handler that answers JSON.

Two small servers of ours run on ``http.server`` rather than an async framework: the MLX
generation server (one model's engine, threads that block in MLX) and local mode's control
endpoint (a few calls from the gateway in front). Both answer a status and a JSON body; this is
that answer, written once.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class JSONRequestHandler(BaseHTTPRequestHandler):
    """A handler with :meth:`send_json`."""

    def send_json(self, status: int, body: Any) -> None:
        """Answer ``status`` with ``body`` as JSON, its length declared."""
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
