"""The running stack the serving tests share (its fixture is in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stack:
    """A running local stack."""

    url: str
    """Base URL, no trailing slash."""
    model: str
    alias: str
    max_model_len: int
    log: Path
    proxy_url: str
    """The same application through the Serve proxy (the path a cluster uses)."""
