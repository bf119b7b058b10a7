"""The MLX server's text splitting: content, tool-call text and stop words across pieces."""

from __future__ import annotations

import pytest
from modelgrid_serving.mlx_output import OutputSplitter, Piece

pytestmark = pytest.mark.unit

TAGS = ("<tool_call>", "</tool_call>")


def split(splitter: OutputSplitter, *texts: str) -> list[Piece]:
    out = [piece for text in texts for piece in splitter.feed(text)]
    return out + splitter.finish()


def joined(pieces: list[Piece]) -> list[tuple[str, str]]:
    """Adjacent text pieces joined (how they were cut depends on the hold-back)."""
    out: list[tuple[str, str]] = []
    for piece in pieces:
        if out and out[-1][0] == piece.kind == "text":
            out[-1] = ("text", out[-1][1] + piece.text)
        else:
            out.append((piece.kind, piece.text))
    return out


def test_plain_text_passes_through_at_once() -> None:
    splitter = OutputSplitter()
    assert splitter.feed("hello") == [Piece("text", "hello")]
    assert splitter.finish() == []


def test_a_stop_word_split_across_pieces_ends_the_output_before_it() -> None:
    splitter = OutputSplitter(stop=["END"])
    assert splitter.feed("abc E") == [Piece("text", "abc ")]  # "E" may begin the stop word
    assert splitter.feed("N") == []
    assert splitter.feed("Dafter") == [] and splitter.stopped
    assert splitter.feed("more") == [] and splitter.finish() == []


def test_a_held_back_prefix_that_is_not_the_stop_word_comes_out() -> None:
    splitter = OutputSplitter(stop=["END"])
    assert joined(split(splitter, "a E", "Nx")) == [("text", "a ENx")]
    assert not splitter.stopped


def test_tool_calls_are_kept_apart_from_content() -> None:
    splitter = OutputSplitter(call_tags=TAGS)
    pieces = split(splitter, "I will <tool", '_call>{"name": "f"}</tool', "_call> done")
    assert joined(pieces) == [
        ("text", "I will "),
        ("call", '{"name": "f"}'),
        ("text", " done"),
    ]


def test_a_stop_word_inside_a_call_is_part_of_the_call() -> None:
    splitter = OutputSplitter(stop=["x"], call_tags=TAGS)
    assert joined(split(splitter, '<tool_call>{"x": 1}</tool_call>')) == [("call", '{"x": 1}')]


def test_an_unclosed_call_is_text_with_its_tag() -> None:
    splitter = OutputSplitter(call_tags=TAGS)
    assert joined(split(splitter, 'a<tool_call>{"na')) == [("text", 'a<tool_call>{"na')]


def test_without_call_tags_the_tags_are_text() -> None:
    splitter = OutputSplitter()
    assert joined(split(splitter, "<tool_call>x</tool_call>")) == [
        ("text", "<tool_call>x</tool_call>")
    ]


def test_empty_stop_words_are_ignored() -> None:
    assert joined(split(OutputSplitter(stop=["", "zz"]), "abc")) == [("text", "abc")]
