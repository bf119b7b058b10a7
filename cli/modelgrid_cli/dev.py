"""``modelgrid dev tiny-model DIR``: generate the tiny test model (no download; needs torch,
the ``tiny-model`` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``dev`` and its subcommands."""
    dev = sub.add_parser("dev", help="developer tools")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    tiny = dev_sub.add_parser("tiny-model", help="generate the tiny test model into DIR")
    tiny.add_argument("dir", help="output directory (reused when already complete)")
    tiny.set_defaults(run=run_tiny_model)


def run_tiny_model(args: argparse.Namespace) -> int:
    """Write the tiny model into ``args.dir`` and print where."""
    from modelgrid_serving.tiny_model import write_tiny_model

    print(write_tiny_model(Path(args.dir)))
    return 0
