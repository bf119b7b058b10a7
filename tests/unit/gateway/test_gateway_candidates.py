"""The capability filter and pool pinning: which backends of a model may take one request."""

from __future__ import annotations

import json
from typing import Any

import pytest
from modelgrid_serving.errors import ModelNotReady, UnsupportedParameter
from modelgrid_serving.gateway.auth import ANONYMOUS, KeyPolicy
from modelgrid_serving.gateway.candidates import (
    PinningNotAllowed,
    PoolNotFound,
    candidates,
    pinned_pool,
)
from modelgrid_serving.gateway.config import RoutingConfig
from modelgrid_serving.gateway.routing import Backend, ModelEntry, build_table
from modelgrid_serving.protocol.capabilities import (
    ALL_CAPABILITIES,
    Capability,
    engine_capabilities,
)
from test_gateway_asgi import call, error_code, make_gateway

pytestmark = pytest.mark.unit

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
VLLM = Backend(
    url="http://vllm/v1", pool="nvidia", capabilities=engine_capabilities("vllm")
)  # no tool-call parser
MLX = Backend(url="http://mlx/v1", pool="apple", capabilities=engine_capabilities("mlx"))


def route_of(*backends: Backend, down: frozenset[str] = frozenset()) -> Any:
    table = build_table([ModelEntry(name="m", backends=backends)], down=down)
    return table.routes["m"]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


def test_a_request_goes_only_to_pools_that_serve_all_of_it() -> None:
    route = route_of(VLLM, MLX)
    assert candidates(route, "chat", chat()) == (VLLM, MLX)
    assert candidates(route, "chat", chat(n=2)) == (VLLM, MLX)
    assert candidates(route, "chat", chat(logprobs=True)) == (VLLM,)
    assert candidates(route, "chat", chat(tools=TOOLS)) == (MLX,)
    assert candidates(route, "chat", chat(tools=TOOLS, tool_choice="required")) == (MLX,)
    assert candidates(route, "embeddings", {"model": "m", "input": "x"}) == (VLLM,)
    assert candidates(route, "completions", {"model": "m", "prompt": "x", "best_of": 2}) == (VLLM,)
    assert candidates(route, "chat", chat(tools=TOOLS, tool_choice="none", logprobs=True)) == (
        VLLM,
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"reasoning_effort": "high"}, "reasoning_effort"),  # no reasoning parser: neither pool
        ({"tools": TOOLS, "logprobs": True}, "tools"),  # each pool one of them: named first
    ],
)
def test_no_pool_can_serve_it_is_400_unsupported_parameter(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        candidates(route_of(VLLM, MLX), "chat", chat(**fields))
    assert info.value.param == param
    assert (info.value.status_code, info.value.code) == (400, "unsupported_parameter")
    assert "'m'" in info.value.message


def test_model_whose_pools_serve_everything_is_never_searched() -> None:
    full = Backend(url="http://any/v1")
    route = route_of(full)
    assert route.lacking == frozenset()
    payload = chat(n=2, tools=TOOLS, logprobs=True)
    assert candidates(route, "chat", payload) == (full,)


def test_lacking_counts_ready_backends_only() -> None:
    route = route_of(VLLM, MLX, down=frozenset({MLX.url}))
    assert route.lacking == ALL_CAPABILITIES - VLLM.capabilities
    assert route.pools == {"nvidia", "apple"}


def test_pinned_pool_takes_only_that_pool() -> None:
    route = route_of(VLLM, MLX)
    assert candidates(route, "chat", chat(), "apple") == (MLX,)
    with pytest.raises(UnsupportedParameter) as info:
        candidates(route, "chat", chat(logprobs=True), "apple")
    assert info.value.param == "logprobs" and "pool 'apple'" in info.value.message


def test_pinned_pool_unknown_is_404_and_not_ready_is_503() -> None:
    route = route_of(VLLM, MLX, down=frozenset({MLX.url}))
    with pytest.raises(PoolNotFound) as info:
        candidates(route, "chat", chat(), "tpu")
    assert info.value.status_code == 404 and info.value.param == "x-modelgrid-pool"
    assert "apple, nvidia" in info.value.message
    with pytest.raises(ModelNotReady) as ready:
        candidates(route, "chat", chat(), "apple")
    assert ready.value.headers["Retry-After"]


def test_pinned_pool_header_is_refused_unless_allowed() -> None:
    off, on = RoutingConfig(), RoutingConfig(allow_pool_pinning=True)
    pinner = KeyPolicy(name="pinner", pool_pinning=True)
    assert pinned_pool(b" apple ", ANONYMOUS, on) == "apple"
    assert pinned_pool(b"apple", pinner, off) == "apple"
    with pytest.raises(PinningNotAllowed) as info:
        pinned_pool(b"apple", ANONYMOUS, off)
    assert info.value.status_code == 403
    with pytest.raises(PoolNotFound):
        pinned_pool(b"", ANONYMOUS, on)


def test_card_shows_what_the_name_and_each_pool_serve() -> None:
    table = build_table([ModelEntry(name="m", backends=(VLLM, MLX))])
    card = json.loads(table.cards["m"])
    together = VLLM.capabilities | MLX.capabilities  # all but reasoning
    assert card["capabilities"] == [c.value for c in Capability if c in together]
    assert card["pools"] == [
        {"name": "nvidia", "capabilities": [c.value for c in Capability if c in VLLM.capabilities]},
        {"name": "apple", "capabilities": ["tools", "tool_choice", "structured_output", "n"]},
    ]


MIXED = {
    "models": [
        {
            "name": "m",
            "backends": [
                {"url": "http://127.0.0.1:9/v1", "pool": "nvidia", "capabilities": ["n"]},
                {"url": "http://127.0.0.1:8/v1", "pool": "apple", "capabilities": ["tools"]},
            ],
        }
    ],
    "limits": {"max_body_bytes": 4096},
}


async def test_gateway_answers_400_naming_the_param_before_any_backend() -> None:
    app = make_gateway(**MIXED)
    body = json.dumps(chat(n=2, logprobs=True)).encode()
    status, _, got = await call(app, "POST", "/v1/chat/completions", body)
    assert status == 400 and error_code(got) == "unsupported_parameter"
    assert json.loads(got)["error"]["param"] == "logprobs"


async def test_gateway_pinning_is_403_off_and_404_for_an_unknown_pool_on() -> None:
    body = json.dumps(chat()).encode()
    pin = {"x-modelgrid-pool": "tpu"}
    status, _, got = await call(make_gateway(**MIXED), "POST", "/v1/chat/completions", body, pin)
    assert (status, error_code(got)) == (403, "pool_pinning_not_allowed")
    on = make_gateway(**MIXED, routing={"allow_pool_pinning": True})
    status, _, got = await call(on, "POST", "/v1/chat/completions", body, pin)
    assert (status, error_code(got)) == (404, "pool_not_found")


async def test_gateway_card_lists_pools_and_capabilities() -> None:
    status, _, got = await call(make_gateway(**MIXED), "GET", "/v1/models/m")
    card = json.loads(got)
    assert status == 200 and card["capabilities"] == ["tools", "n"]
    assert [p["name"] for p in card["pools"]] == ["nvidia", "apple"]


async def test_gateway_pinning_applies_to_a_model_whose_pools_serve_everything() -> None:
    """Nothing to filter by capability (the fast path) still honours and checks the pin."""
    body = json.dumps(chat(model="llama")).encode()
    app = make_gateway(routing={"allow_pool_pinning": True}, limits={"max_body_bytes": 4096})
    pin = {"x-modelgrid-pool": "tpu"}
    status, _, got = await call(app, "POST", "/v1/chat/completions", body, pin)
    assert (status, error_code(got)) == (404, "pool_not_found")
    status, _, got = await call(
        make_gateway(limits={"max_body_bytes": 4096}), "POST", "/v1/chat/completions", body, pin
    )
    assert (status, error_code(got)) == (403, "pool_pinning_not_allowed")
