"""Protocol bounds the gateway holds before a request reaches any backend.

What one request may ask for is bounded here, so that one client cannot turn one admitted
request into a batch (``n``, ``best_of``, many prompts) or an answer longer than the model's
context (``max_tokens``). Only what these bounds need is read from the parsed body, a few
dictionary look-ups; the engine still validates everything else (types, ranges) and answers in
the same error shape.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from .config import LimitsConfig
from .routing import Route

_MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")


def check_bounds(
    payload: dict[str, Any], route_label: str, route: Route, limits: LimitsConfig
) -> int | None:
    """Refuse a request over the gateway's protocol bounds.

    Args:
        payload: The parsed request body.
        route_label: ``chat``, ``completions`` or ``embeddings``.
        route: Where it goes (its ``max_model_len`` when known).
        limits: ``max_n`` and ``max_prompts``.

    Returns:
        The answer's token bound the request sets (``max_completion_tokens`` or ``max_tokens``,
        the larger when both), ``None`` when it sets none or not as an integer.

    Raises:
        InvalidRequest: 400 naming the field over its bound.
    """
    for field in ("n", "best_of"):
        value = payload.get(field)
        if type(value) is int and value > limits.max_n:
            raise InvalidRequest(
                f"'{field}' is {value}; this gateway allows at most {limits.max_n} choices "
                "per request.",
                param=field,
            )
    if route_label == "completions":
        prompt = payload.get("prompt")
        # a list of token ids is one prompt; a list of strings or of id lists is many
        if type(prompt) is list and len(prompt) > limits.max_prompts and type(prompt[0]) is not int:
            raise InvalidRequest(
                f"'prompt' holds {len(prompt)} prompts; this gateway allows at most "
                f"{limits.max_prompts} in one request.",
                param="prompt",
            )
    requested: int | None = None
    for field in _MAX_TOKENS_FIELDS:
        value = payload.get(field)
        if type(value) is not int:
            continue
        if route.max_model_len is not None and value > route.max_model_len:
            raise InvalidRequest(
                f"'{field}' is {value}, more than the model's context length of "
                f"{route.max_model_len} tokens.",
                param=field,
            )
        requested = value if requested is None else max(requested, value)
    return requested
