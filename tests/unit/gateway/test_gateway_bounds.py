"""The gateway's protocol bounds read a few fields as integers: each must be a JSON integer, as
the replica's strict types want it (issue 19), or the request is refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from modelgrid_serving.errors import InvalidRequest
from modelgrid_serving.gateway.bounds import check_bounds
from modelgrid_serving.gateway.config import LimitsConfig
from modelgrid_serving.gateway.routing import Route

pytestmark = pytest.mark.unit

ROUTE = Route(model="m", backends=(), max_model_len=512)


def bounds(**fields: Any) -> int | None:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return check_bounds(payload, "chat", ROUTE, LimitsConfig())


@pytest.mark.parametrize("field", ["n", "best_of", "max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", ["2", 2.0, True, [2], {"n": 2}])
def test_a_bounded_field_that_is_not_an_integer_is_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        bounds(**{field: value})
    assert info.value.param == field and info.value.status_code == 400
    assert "expected an integer" in info.value.message


def test_integers_and_nulls_pass_and_set_the_answer_bound() -> None:
    assert bounds(n=2, max_tokens=16, best_of=None) == 16
    assert bounds(max_tokens=None, max_completion_tokens=8) == 8
    assert bounds() is None


def test_a_bounded_field_over_its_bound_is_still_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        bounds(max_tokens=513)
    assert info.value.param == "max_tokens"
