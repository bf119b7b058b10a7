"""Hot-path byte handling: model read, spliced rewrite, usage found in bodies and SSE chunks."""

from __future__ import annotations

import json

import pytest
from modelgrid_serving.errors import InvalidJSON
from modelgrid_serving.gateway.proxy import find_usage, model_renamer, parse_body, rewrite_model

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("body", [b"{bad", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_parse_body_refuses_non_objects(body: bytes) -> None:
    with pytest.raises(InvalidJSON):
        parse_body(body)


def test_rewrite_model_splices_in_place() -> None:
    body = b'{"model" : "tiny", "messages": [{"role": "user", "content": "hi"}]}'
    out = rewrite_model(body, parse_body(body), "/models/tiny")
    assert out == b'{"model":"/models/tiny", "messages": [{"role": "user", "content": "hi"}]}'


def test_rewrite_model_reencodes_when_the_name_occurs_twice() -> None:
    body = b'{"model": "tiny", "metadata": {"model": "tiny"}}'
    out = json.loads(rewrite_model(body, parse_body(body), "up"))
    assert out == {"model": "up", "metadata": {"model": "tiny"}}


def test_rewrite_model_handles_non_ascii_names() -> None:
    body = '{"model": "modèle"}'.encode()
    assert json.loads(rewrite_model(body, parse_body(body), "up")) == {"model": "up"}


def test_model_renamer_restores_the_served_name() -> None:
    rename = model_renamer("/abs/path", "tiny")
    assert rename(b'data: {"model": "/abs/path", "x": 1}') == b'data: {"model": "tiny", "x": 1}'


def test_find_usage_in_body_and_absent() -> None:
    body = b'{"choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 5, "total_tokens": 22}}'
    assert find_usage(body) == (17, 5)
    assert find_usage(b'{"choices": []}') is None


def test_find_usage_ignores_escaped_keys_in_content() -> None:
    chunk = b'{"content": "\\"usage\\" \\"prompt_tokens\\": 99"}'
    assert find_usage(chunk) is None
