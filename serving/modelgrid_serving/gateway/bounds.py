"""Protocol bounds the gateway holds before a request reaches any backend.

What one request may ask for is bounded here, so that one client cannot turn one admitted
request into a batch (``n``, ``best_of``, many prompts) or an answer longer than the model's
context (``max_tokens``). Only what these bounds need is read from the parsed body, a few
dictionary look-ups, each refused unless it is a JSON integer; the replica still validates
everything else (types, ranges) and answers in the same error shape.
"""

from __future__ import annotations

import json
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
        the larger when both), ``None`` when it sets none.

    Raises:
        InvalidRequest: 400 naming the field over its bound, or not an integer.
    """
    # straight-line look-ups, no loops: this runs on every proxied request
    get = payload.get
    max_n = limits.max_n
    n, best_of = get("n"), get("best_of")
    max_tokens, max_completion = get("max_tokens"), get("max_completion_tokens")
    # a field read here as an integer must be one (OpenAI refuses "2" and 2.0 as strictly as
    # the replica does); a bool is not one either, though Python counts it as an int
    if n is not None and type(n) is not int:
        raise _not_an_integer("n", n)
    if best_of is not None and type(best_of) is not int:
        raise _not_an_integer("best_of", best_of)
    if max_tokens is not None and type(max_tokens) is not int:
        raise _not_an_integer("max_tokens", max_tokens)
    if max_completion is not None and type(max_completion) is not int:
        raise _not_an_integer("max_completion_tokens", max_completion)
    if n is not None and n > max_n:
        raise _too_many_choices("n", n, max_n)
    if best_of is not None and best_of > max_n:
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


def _not_an_integer(field: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{field}': expected an integer, but got {type(value).__name__} "
        f"{json.dumps(value)[:80]}.",
        param=field,
    )


def _too_many_choices(field: str, value: int, max_n: int) -> InvalidRequest:
    return InvalidRequest(
        f"'{field}' is {value}; this gateway allows at most {max_n} choices per request.",
        param=field,
    )
