"""``modelgrid crd``: print the InferenceModel CRD generated from the typed API (what ``crds/``
and the chart hold; a unit test fails when they differ)."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``crd``."""
    sub.add_parser("crd", help="print the InferenceModel CRD").set_defaults(run=run)


def run(_: argparse.Namespace) -> int:
    """Print the CRD as YAML."""
    from modelgrid_operator.crd import render_crd_yaml

    sys.stdout.write(render_crd_yaml())
    return 0
