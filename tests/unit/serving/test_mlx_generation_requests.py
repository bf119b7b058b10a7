"""The MLX generation server refuses, by field, what would break its batch (no model)."""

from __future__ import annotations

from typing import Any

import pytest
from modelgrid_serving.mlx_generation import BadRequest, Generation

pytestmark = pytest.mark.unit

VOCAB = 512


def test_a_full_request_is_read() -> None:
    request = Generation.from_body(
        {
            "prompt": [1, 2, 511],
            "max_tokens": 4,
            "temperature": 0,
            "seed": 7,
            "logit_bias": {"2": -100},
            "stop": ["x"],
            "json_schema": {"type": "object"},
            "tools": [],
        },
        VOCAB,
    )
    assert request.prompt == [1, 2, 511] and request.max_tokens == 4
    assert request.temperature == 0.0 and isinstance(request.temperature, float)
    assert request.logit_bias == {2: -100.0} and request.stop == ("x",)
    assert request.json_schema == {"type": "object"} and request.tools == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": [], "max_tokens": 1}, "prompt"),
        ({"prompt": [VOCAB], "max_tokens": 1}, "prompt"),
        ({"prompt": ["a"], "max_tokens": 1}, "prompt"),
        ({"prompt": [1]}, "max_tokens"),
        ({"prompt": [1], "max_tokens": 0}, "max_tokens"),
        ({"prompt": [1], "max_tokens": True}, "max_tokens"),
        ({"prompt": [1], "max_tokens": 1, "temperature": "hot"}, "temperature"),
        ({"prompt": [1], "max_tokens": 1, "seed": -1}, "seed"),
        ({"prompt": [1], "max_tokens": 1, "logit_bias": {"a": 1}}, "logit_bias"),
        ({"prompt": [1], "max_tokens": 1, "logit_bias": {"9999": 1}}, "logit_bias"),
        ({"prompt": [1], "max_tokens": 1, "stop": "x"}, "stop"),
        ({"prompt": [1], "max_tokens": 1, "json_schema": "{}"}, "json_schema"),
        ({"prompt": [1], "max_tokens": 1, "tools": {}}, "tools"),
    ],
)
def test_a_bad_field_is_named(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as info:
        Generation.from_body(body, VOCAB)
    assert info.value.field == field


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(BadRequest):
        Generation.from_body([1, 2], VOCAB)
