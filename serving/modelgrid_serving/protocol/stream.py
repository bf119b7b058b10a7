"""What a stream chunk says about the whole request: its token usage.

The replica and the gateway both count tokens from the usage object of a parsed chunk, so they
read it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def chunk_usage(chunk: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` of a chunk's (or body's) ``usage`` object (a
    missing count is 0), or None when it has none."""
    usage = chunk.get("usage")
    if not isinstance(usage, Mapping):
        return None
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
