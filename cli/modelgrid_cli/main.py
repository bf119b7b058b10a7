"""The ``modelgrid`` console script's entry point: the parser of every subcommand, and ``main``.

Building the parser imports no subcommand's dependencies: each module below only declares its
arguments; its ``run`` imports what it needs. Bad input exits non-zero with the file, the YAML
path of the bad field and a one-line reason, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from modelgrid_cli import crd, dev, gateway, hosting, operator, render, up
from modelgrid_cli.models import BadInput


def _version() -> str:
    try:
        return version("modelgrid")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="modelgrid", description="Serve LLMs behind one OpenAI-compatible API."
    )
    parser.add_argument("--version", action="version", version=f"modelgrid {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (up, hosting, render, crd, operator, gateway, dev):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except BadInput as exc:
        for line in exc.lines:
            print(f"modelgrid: {line}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"modelgrid: {exc.filename}: no such file", file=sys.stderr)
        return 2
