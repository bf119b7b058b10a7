"""The SSE framer: whole events whatever the chunking, comments, [DONE], CRLF, oversize events."""

from __future__ import annotations

import json

import pytest
from modelgrid_serving.sse import (
    DONE,
    DONE_FRAME,
    EventTooLarge,
    SSEReader,
    data_frame,
    event_data,
    has_done,
    iter_data,
    last_data_with,
)

pytestmark = pytest.mark.unit

CHUNK = json.dumps({"choices": [{"delta": {"content": "a\u2028b é"}}]}, ensure_ascii=False)
STREAM = (
    f": keepalive 1/2\n\ndata: {CHUNK}\n\ndata:{CHUNK}\n\nevent: x\ndata: two\ndata: lines\n\n"
    "data\n\ndata: [DONE]\n\n"
).encode()
DATA = [CHUNK, CHUNK, "two\nlines", "", DONE]
"""What STREAM carries: the comment has no data, one space after the colon is dropped, data
lines join with a newline, a bare ``data`` line is an empty value."""


def read_all(chunks: list[bytes], limit: int = 1 << 20) -> tuple[list[bytes], list[str]]:
    """The blocks a reader hands out for ``chunks``, and the data of their events."""
    reader = SSEReader(limit)
    blocks = [reader.feed(chunk) for chunk in chunks]
    blocks.append(reader.finish())
    return blocks, [data for block in blocks for data in iter_data(block)]


def test_reader_gives_whole_events_for_a_split_at_every_byte() -> None:
    for at in range(len(STREAM) + 1):
        blocks, data = read_all([STREAM[:at], STREAM[at:]])
        assert data == DATA, at
        assert all(b.endswith(b"\n\n") for b in blocks if b), at
        assert b"".join(blocks) == STREAM, at


def test_reader_gives_whole_events_fed_one_byte_at_a_time() -> None:
    _, data = read_all([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert data == DATA


def test_reader_hands_out_nothing_until_an_event_ends() -> None:
    reader = SSEReader()
    assert reader.feed(b"data: {") == b""
    assert reader.feed(b'"a":1}\n') == b""
    assert reader.feed(b"\ndata: [DO") == b'data: {"a":1}\n\n'
    assert reader.feed(b"NE]\n\n") == b"data: [DONE]\n\n"
    assert reader.finish() == b""


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_reader_reads_crlf_and_cr_line_ends_split_anywhere(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    for at in range(len(stream) + 1):
        blocks, data = read_all([stream[:at], stream[at:]])
        assert data == DATA, at
        assert b"".join(blocks) == STREAM, at  # line ends made LF


def test_reader_finish_returns_a_last_event_without_its_blank_line() -> None:
    _, data = read_all([b"data: a\n\ndata: [DONE]\n"])
    assert data == ["a", DONE]


def test_reader_refuses_an_event_over_the_limit_that_never_ends() -> None:
    reader = SSEReader(limit=64)
    reader.feed(b"data: " + b"x" * 50)
    with pytest.raises(EventTooLarge):
        reader.feed(b"x" * 50)


def test_reader_refuses_an_oversize_event_completed_by_a_later_chunk() -> None:
    reader = SSEReader(limit=64)
    reader.feed(b"data: " + b"x" * 50)
    with pytest.raises(EventTooLarge):
        reader.feed(b"x" * 20 + b"\n\n")


def test_reader_keeps_events_up_to_the_limit() -> None:
    reader = SSEReader(limit=64)
    event = b"data: " + b"x" * 56 + b"\n\n"  # exactly 64 bytes
    assert reader.feed(event[:40]) == b""
    assert reader.feed(event[40:]) == event


def test_event_data_of_comment_and_other_fields_is_none() -> None:
    assert event_data(": keepalive") is None
    assert event_data("event: ping\nid: 3") is None
    assert event_data("data: [DONE]\r\n") == DONE


def test_last_data_with_parses_only_the_event_that_holds_the_text() -> None:
    text = json.dumps({"choices": [{"delta": {"content": "[DONE]"}}]})
    block = f"data: {text}\n\ndata: {{}}\n\n".encode()
    assert last_data_with(block, b"[DONE]") == text  # content that mentions it is no end
    assert last_data_with(block + DONE_FRAME.encode(), b"[DONE]") == DONE
    assert last_data_with(b"data: [DONE]", b"[DONE]") == DONE  # from finish(): no blank line
    assert last_data_with(block, b'"usage"') is None


@pytest.mark.parametrize("data", [CHUNK, "two\nlines", "cr\r\nlf", "", DONE])
def test_data_frame_round_trips(data: str) -> None:
    frame = data_frame(data).encode()
    assert frame.endswith(b"\n\n") and frame.count(b"\n\n") == 1
    assert list(iter_data(frame)) == [data.replace("\r\n", "\n")]


def test_done_frame_is_the_data_frame_of_done() -> None:
    assert data_frame(DONE) == DONE_FRAME == "data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("block", "done"),
    [
        (b"data: [DONE]\n\n", True),
        (b'data: {"a":1}\n\ndata: [DONE]\n\n', True),
        (b"data:[DONE]\n\n", True),  # not as OpenAI writes it: parsed
        (b"data: [DONE]", True),  # from finish(): no blank line
        (b'data: {"c":"x"}\ndata: [DONE]\n\n', False),  # one event whose data is two lines
        (b'data: {"c":"[DONE]"}\n\n', False),
        (b"", False),
    ],
)
def test_has_done(block: bytes, done: bool) -> None:
    assert has_done(block) is done
