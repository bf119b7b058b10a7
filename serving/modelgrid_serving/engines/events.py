"""What a streaming engine yields: typed events, not SSE text.

A stream is zero or more :class:`Delta`, at most one :class:`Usage` (after the last delta), and
one end: :data:`DONE`, or a :class:`StreamError` when the engine failed after it began. The
replica turns them into SSE (:mod:`modelgrid_serving.sse`): it counts and times tokens from the
deltas, counts usage from the usage event and drops that event when the client did not ask for
it, and writes an error as OpenAI's error body. Engines never format SSE; the replica never
searches a chunk's text to learn what it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from ..errors import APIError, EngineError, from_engine_error
from ..protocol import chunk_usage


@dataclass(frozen=True, slots=True)
class Delta:
    """Generated output: one OpenAI stream chunk (``chat.completion.chunk`` or
    ``text_completion``) with at least one choice, as compact JSON."""

    chunk: str
    """The chunk's JSON text, written as the client gets it (compact: ``"model":"<name>"``)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """The token counts of the whole request: the chunk whose ``choices`` is empty."""

    prompt_tokens: int
    completion_tokens: int
    chunk: str
    """The chunk's JSON text, sent only to a client that asked for usage."""


@dataclass(frozen=True, slots=True)
class StreamError:
    """The engine failed after the stream began: the client gets this error's body, then the
    end of the stream."""

    error: APIError


@dataclass(frozen=True, slots=True)
class Done:
    """The stream is complete (OpenAI's ``[DONE]``)."""


DONE = Done()

StreamEvent = Delta | Usage | StreamError | Done


def chunk_event(chunk: Mapping[str, Any], text: str) -> Delta | Usage | StreamError:
    """The event a parsed OpenAI stream chunk stands for.

    Args:
        chunk: The chunk, parsed.
        text: The same chunk as the JSON text to send.

    Returns:
        A :class:`StreamError` for an error body (``{"error": {...}}``), a :class:`Usage` for a
        chunk with a ``usage`` object and no choices, else a :class:`Delta`.
    """
    error = chunk.get("error")
    if isinstance(error, Mapping):
        return StreamError(error_from_body(error))
    usage = chunk_usage(chunk)
    if usage is not None and not chunk.get("choices"):
        return Usage(*usage, text)
    return Delta(text)


def parse_chunk(text: str) -> Delta | Usage | StreamError:
    """The event of a chunk's JSON text (engines that pass chunks through, such as vLLM).

    Only text that holds the key ``"usage"`` or ``"error"`` is parsed: a JSON object with either
    key has that text in it, so the token chunks (nearly all) are sent on unparsed, and what a
    chunk is is decided by :func:`chunk_event` from its parsed body, never by its text.

    Raises:
        EngineError: the text is not a JSON object.
    """
    if '"usage"' not in text and '"error"' not in text:
        return Delta(text)
    return chunk_event(load_chunk(text, source="The engine"), text)


def load_chunk(text: str, *, source: str) -> dict[str, Any]:
    """A stream chunk's JSON text, parsed.

    Raises:
        EngineError: the text is not a JSON object (``source`` names who sent it).
    """
    try:
        chunk = json.loads(text)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        raise EngineError(f"{source} sent a stream chunk that is not a JSON object.")
    return chunk


async def until_end(
    events: AsyncGenerator[StreamEvent, None], *, source: str
) -> AsyncGenerator[StreamEvent, None]:
    """``events`` up to their end (:data:`DONE` or a :class:`StreamError`), then ``events`` is
    closed (an engine's generator stops generating). A source that stops before its end was cut
    short: :class:`~modelgrid_serving.errors.EngineError` naming ``source``."""
    async with aclosing(events):
        async for event in events:
            yield event
            if isinstance(event, Done | StreamError):
                return
    raise EngineError(f"{source} ended the stream early.")


def error_from_body(error: Mapping[str, Any]) -> APIError:
    """Our error for the ``error`` object of an engine's error body (OpenAI's shape; vLLM's
    ``code`` is the HTTP status)."""
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else 500
    param = error.get("param")
    return from_engine_error(
        str(error.get("message") or "The engine failed mid-stream."),
        status_code=status,
        param=param if isinstance(param, str) else None,
    )
