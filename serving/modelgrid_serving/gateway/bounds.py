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
    # straight-line look-ups, no loops: this runs on every proxied request
    get = payload.get
    max_n = limits.max_n
    n, best_of = get("n"), get("best_of")
    if type(n) is int and n > max_n:
        raise _too_many_choices("n", n, max_n)
    if type(best_of) is int and best_of > max_n:
        raise _too_many_choices("best_of", best_of, max_n)
    if route_label == "completions":
        prompt = get("prompt")
        # a list of token ids is one prompt; a list of strings or of id lists is many
        if type(prompt) is list and len(prompt) > limits.max_prompts and type(prompt[0]) is not int:
            raise InvalidRequest(
                f"'prompt' holds {len(prompt)} prompts; this gateway allows at most "
                f"{limits.max_prompts} in one request.",
                param="prompt",
            )
    max_tokens, max_completion = get("max_tokens"), get("max_completion_tokens")
    if type(max_tokens) is not int:
        max_tokens = None
    if type(max_completion) is not int:
        max_completion = None
    context = route.max_model_len
    if context is not None:
        for field, value in (("max_tokens", max_tokens), ("max_completion_tokens", max_completion)):
            if value is not None and value > context:
                raise InvalidRequest(
                    f"'{field}' is {value}, more than the model's context length of "
                    f"{context} tokens.",
                    param=field,
                )
    if max_completion is None:
        return max_tokens
    return max_completion if max_tokens is None else max(max_tokens, max_completion)


def _too_many_choices(field: str, value: int, max_n: int) -> InvalidRequest:
    return InvalidRequest(
        f"'{field}' is {value}; this gateway allows at most {max_n} choices per request.",
        param=field,
    )
