"""``python -m modelgrid_serving.gateway [--config FILE] [--port N] [--kubernetes]``, and
``python -m modelgrid_serving.gateway hash-key`` (reads a key on stdin, prints its SHA-256)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .auth import hash_key
from .server import serve


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["hash-key"]:
        print(hash_key(sys.stdin.readline().strip()))
        return
    parser = argparse.ArgumentParser(prog="python -m modelgrid_serving.gateway")
    parser.add_argument("--config", type=Path, default=None, help="static YAML file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="port of GET /metrics (default: the config's metrics.port, 9090); 0: off",
    )
    parser.add_argument("--kubernetes", action="store_true", help="watch InferenceModels")
    parser.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        help="watch this namespace (repeatable; default: all)",
    )
    opts = parser.parse_args(args)
    serve(
        opts.config,
        host=opts.host,
        port=opts.port,
        kubernetes=opts.kubernetes,
        namespaces=tuple(opts.namespaces),
        metrics_port=opts.metrics_port,
    )


if __name__ == "__main__":
    main()
