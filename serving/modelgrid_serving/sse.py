"""Server-Sent Events, read and written in one place: the replica and the gateway both use it.

A stream arrives in chunks cut anywhere (inside a line, between a CR and its LF), so
:class:`SSEReader` keeps the unfinished end of each chunk and hands out whole events only, as one
block of bytes with LF line ends: the gateway forwards such blocks unchanged (the fewest copies on
its hot path) and looks inside only when it must, the replica splits them with :func:`iter_data`.
An event is a run of lines ended by a blank line (WHATWG HTML, "Server-sent events"): lines
starting with ``:`` are comments (keep-alives), ``data:`` lines carry the payload, one space
after the colon is dropped, several data lines are joined by a newline.

Writing is :func:`data_frame`; OpenAI streams end with :data:`DONE_FRAME`. Imports nothing of
ours: the format knows nothing of OpenAI's chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

DONE = "[DONE]"
"""The data of the event that ends an OpenAI stream."""
DONE_FRAME = "data: [DONE]\n\n"
_DONE_BYTES = DONE.encode()
_DONE_FRAME_BYTES = DONE_FRAME.encode()
_BEFORE_DONE_FRAME = slice(-len(DONE_FRAME) - 2, -len(DONE_FRAME))

MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The longest event read: a backend that never ends its event must not fill memory. Legitimate
events are far smaller; the largest is a completion stream's first chunk with ``echo``, which
repeats the prompt (a request body is at most 4 MiB, JSON escaping can grow it)."""


class EventTooLarge(ValueError):
    """An event longer than the reader's limit: the stream cannot be read on."""


class SSEReader:
    """Splits a byte stream into whole events, whatever the chunking.

    ``feed`` each chunk as it arrives; what it returns is every event the chunk completed (none:
    ``b""``), line ends made LF. At the end of the stream, :meth:`finish` returns what is left.
    """

    __slots__ = ("_limit", "_pending")

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self._limit = limit
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """The whole events that ``data`` completes, as one block ending in a blank line.

        Raises:
            EventTooLarge: an event is longer than the limit.
        """
        pending = self._pending
        if pending:
            data = pending + data
        held = b""
        if b"\r" in data:
            if data.endswith(b"\r"):  # its LF may open the next chunk: CR LF is one line end
                data, held = data[:-1], b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = data.rfind(b"\n\n") + 2
        if end == 1:  # no event ends here
            self._keep(data + held)
            return b""
        if pending and data.find(b"\n\n") > self._limit:  # the event the pending part began
            raise EventTooLarge(f"an event is longer than {self._limit} bytes")
        if end == len(data):  # the common case: the chunk ends where an event ends
            self._pending = held
            return data
        self._keep(data[end:] + held)
        return data[:end]

    def finish(self) -> bytes:
        """What is left at the end of the stream: an event not followed by its blank line (read
        as one, so nothing is lost), or ``b""``."""
        rest, self._pending = self._pending, b""
        return rest.replace(b"\r", b"\n")

    def _keep(self, rest: bytes) -> None:
        if len(rest) > self._limit:
            raise EventTooLarge(f"an event is longer than {self._limit} bytes")
        self._pending = rest


def event_data(event: str) -> str | None:
    """The data of one event (its ``data`` lines joined by newlines), or None when it has no data
    (a comment, a keep-alive, an event with other fields only)."""
    if "\r" in event:
        event = event.replace("\r\n", "\n").replace("\r", "\n")
    data: list[str] = []
    for line in event.split("\n"):
        if line.startswith("data:"):
            value = line[5:]
            data.append(value.removeprefix(" "))
        elif line == "data":  # a field name alone: an empty value
            data.append("")
    return "\n".join(data) if data else None


def iter_data(block: bytes) -> Iterator[str]:
    """The data of each event in a block from :class:`SSEReader`, events without data skipped.

    Text is UTF-8; an invalid byte becomes U+FFFD rather than ending the stream.
    """
    for event in block.split(b"\n\n"):
        if event:
            data = event_data(event.decode("utf-8", "replace"))
            if data is not None:
                yield data


def last_data_with(block: bytes, text: bytes) -> str | None:
    """The data of the last event in a block from :class:`SSEReader` that contains ``text``
    (None: no event does, or that one has no data). Only that event is decoded and parsed: the
    gateway's way to look into a block it otherwise forwards untouched."""
    at = block.rfind(text)
    if at < 0:
        return None
    start = block.rfind(b"\n\n", 0, at)
    end = block.find(b"\n\n", at)
    event = block[start + 2 if start >= 0 else 0 : end if end >= 0 else len(block)]
    return event_data(event.decode("utf-8", "replace"))


def has_done(block: bytes) -> bool:
    """Whether a block from :class:`SSEReader` holds the event whose data is ``[DONE]``.

    As OpenAI servers write it (``data: [DONE]``, alone in the block's last event) it is seen
    without decoding anything; otherwise the last event that mentions ``[DONE]`` is parsed, so
    content that merely says it ends nothing.
    """
    if block.endswith(_DONE_FRAME_BYTES) and block[_BEFORE_DONE_FRAME] in (b"", b"\n\n"):
        return True
    return _DONE_BYTES in block and last_data_with(block, _DONE_BYTES) == DONE


def data_frame(data: str) -> str:
    """One event carrying ``data``: a ``data:`` line per line of it, then the blank line."""
    if "\n" in data or "\r" in data:
        lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        return "".join(f"data: {line}\n" for line in lines) + "\n"
    return f"data: {data}\n\n"
