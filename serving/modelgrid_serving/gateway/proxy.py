"""The hot path's byte handling: read ``model``, rewrite it when a backend needs another name,
find token usage in responses. No JSON re-encoding unless a rewrite cannot be spliced.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..errors import InvalidJSON
from ..protocol import chunk_usage

_PROMPT_TOKENS = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
"""Keys, not text: inside a JSON string every quote is escaped, so ``"prompt_tokens"`` with both
quotes bare and a number after its colon can only be a key."""

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"content-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"date",
        b"server",
    }
)
"""Response headers the gateway does not relay (it sets its own framing)."""


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        InvalidJSON: not JSON, or not an object.
    """
    try:
        payload = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidJSON(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidJSON("The request body must be a JSON object.")
    return payload


def rewrite_model(body: bytes, payload: dict[str, Any], upstream: str) -> bytes:
    """``body`` with its top-level ``model`` replaced by ``upstream``.

    The value is spliced in place when the original ``"model": "<name>"`` occurs exactly once
    (the common case); otherwise the object is re-encoded.
    """
    name = payload["model"]
    matches = [
        m
        for enc in {json.dumps(name).encode(), json.dumps(name, ensure_ascii=False).encode()}
        for m in re.finditer(rb'"model"\s*:\s*' + re.escape(enc), body)
    ]
    if len(matches) == 1:
        m = matches[0]
        return body[: m.start()] + b'"model":' + json.dumps(upstream).encode() + body[m.end() :]
    return json.dumps({**payload, "model": upstream}).encode()


def model_renamer(upstream: str, served: str) -> Callable[[bytes], bytes]:
    """A function that puts the served name back where a response says the upstream name."""
    pattern = re.compile(rb'"model"\s*:\s*' + re.escape(json.dumps(upstream).encode()))
    replacement = b'"model": ' + json.dumps(served).encode()
    return lambda data: pattern.sub(replacement, data)


def find_usage(data: bytes) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` from a response body or SSE chunk, if present."""
    at = data.find(b'"usage"')
    if at < 0:
        return None
    # From the usage key on: a body's usage comes after its choices, which can be long.
    prompt = _PROMPT_TOKENS.search(data, at)
    completion = _COMPLETION_TOKENS.search(data, at)
    if prompt is None and completion is None:
        return None
    return (int(prompt.group(1)) if prompt else 0, int(completion.group(1)) if completion else 0)


def event_usage(data: str | None) -> tuple[int, int] | None:
    """``(prompt_tokens, completion_tokens)`` of a stream event's data, parsed (a chunk whose
    content merely mentions usage has none), if it has a usage object."""
    if data is None:
        return None
    try:
        chunk = json.loads(data)
    except ValueError:
        return None
    return chunk_usage(chunk) if isinstance(chunk, dict) else None


def estimate_prompt_tokens(body: bytes) -> int:
    """A rough prompt size for limits when a backend reports no usage: 4 bytes a token."""
    return len(body) // 4
