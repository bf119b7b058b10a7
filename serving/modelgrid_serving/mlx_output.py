"""What the MLX generation server makes of generated text: content, tool-call text, a stop word.

Pure (no MLX): the model's text arrives in pieces as it is decoded; a stop word or a tool-call tag
may be split across pieces, so text that could be the start of one is held back until the next
piece decides. Text between the model's tool-call tags (mlx-lm knows them per model: Hermes'
``<tool_call>`` ... ``</tool_call>`` for Qwen and the tiny model) is kept apart for mlx-lm's
tool parser; a stop word ends the output outside a call (inside one it is part of the call's
arguments, as in vLLM, whose tool parser sees the whole text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Piece:
    """Output to send: ``text`` is content; ``call`` is the text between a call's tags."""

    kind: Literal["text", "call"]
    text: str


@dataclass
class OutputSplitter:
    """Splits streamed text into content and tool-call text, and ends it at a stop word."""

    stop: Sequence[str] = ()
    call_tags: tuple[str, str] | None = None
    """The model's tool-call start and end tags, when tool calls are to be read."""
    stopped: bool = False
    """A stop word was met: nothing more is output."""
    _pending: str = ""
    _in_call: bool = False
    _markers: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        self.stop = tuple(word for word in self.stop if word)
        self._markers = (*self.stop, *(self.call_tags[:1] if self.call_tags else ()))

    def feed(self, text: str) -> list[Piece]:
        """The output that ``text`` completes (possibly none: it may be held back)."""
        if self.stopped:
            return []
        self._pending += text
        out: list[Piece] = []
        while not self.stopped:
            if self._in_call:
                if not self._close_call(out):
                    break
            elif not self._open_call_or_stop(out):
                break
        return out

    def finish(self) -> list[Piece]:
        """What is left when generation ends: held-back text, or an unclosed call as text."""
        if self.stopped:
            return []
        text = self._pending
        if self._in_call and self.call_tags:
            text = self.call_tags[0] + text  # cut off: never a call, so the client sees it all
        self._pending, self._in_call = "", False
        return [Piece("text", text)] if text else []

    def _close_call(self, out: list[Piece]) -> bool:
        assert self.call_tags is not None
        end = self._pending.find(self.call_tags[1])
        if end < 0:
            return False
        out.append(Piece("call", self._pending[:end]))
        self._pending = self._pending[end + len(self.call_tags[1]) :]
        self._in_call = False
        return True

    def _open_call_or_stop(self, out: list[Piece]) -> bool:
        found = [(self._pending.find(m), m) for m in self._markers]
        hits = [(at, marker) for at, marker in found if at >= 0]
        if not hits:
            keep = _held_back(self._pending, self._markers)
            _append_text(out, self._pending[: len(self._pending) - keep])
            self._pending = self._pending[len(self._pending) - keep :]
            return False
        at, marker = min(hits, key=lambda hit: (hit[0], marker_rank(hit[1], self.stop)))
        _append_text(out, self._pending[:at])
        if marker in self.stop:
            self._pending, self.stopped = "", True
            return False
        self._pending = self._pending[at + len(marker) :]
        self._in_call = True
        return True


def marker_rank(marker: str, stop: Sequence[str]) -> int:
    """At the same position a stop word wins over a tool-call tag (the client asked for it)."""
    return 0 if marker in stop else 1


def _held_back(text: str, markers: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could begin one of ``markers``."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if marker.startswith(text[-size:]):
                longest = size
                break
    return longest


def _append_text(out: list[Piece], text: str) -> None:
    if text:
        out.append(Piece("text", text))
