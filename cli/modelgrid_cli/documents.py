"""Kubernetes objects as multi-document YAML, like ``helm template`` prints them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml


class _BlockDumper(yaml.SafeDumper):
    """Dumps multi-line strings (the Serve config) as readable ``|`` blocks, without anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _str_representer)


def dump_documents(objects: Sequence[dict[str, Any]]) -> str:
    """Objects as multi-document YAML, each starting with ``---``."""
    return yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False, explicit_start=True)
