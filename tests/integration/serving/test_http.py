"""Raw HTTP on each engine: the error cases, the service routes, metrics, streams arriving as
they are generated, 32 parallel streams."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from local_stack import Stack

pytestmark = pytest.mark.integration

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def chat_body(stack: Stack, **overrides: Any) -> dict[str, Any]:
    return {"model": stack.model, **CHAT, **overrides}


def assert_error(
    reply: httpx.Response,
    status: int,
    check_schema: Any,
    *,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body = reply.json()
    check_schema("ErrorResponse", body)
    if param is not None:
        assert body["error"]["param"] == param, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# --- service routes ---------------------------------------------------------------------------


def test_root_names_service_models_and_engine(http: httpx.Client, stack: Stack) -> None:
    body = http.get("/").json()
    assert body["name"] == "modelgrid"
    assert body["models"] == [stack.model, stack.alias]
    assert body["engine"] == stack.engine and body["version"] and body["engine_version"]


def test_health_is_ok(http: httpx.Client) -> None:
    reply = http.get("/health")
    assert reply.status_code == 200 and reply.json() == {"status": "ok"}


def test_metrics_count_requests_and_tokens(http: httpx.Client, stack: Stack) -> None:
    reply = http.post("/v1/chat/completions", json=chat_body(stack, stream=True, ignore_eos=True))
    assert reply.status_code == 200
    text = http.get("/metrics").text
    for name in (
        "modelgrid_replica_requests_total",
        "modelgrid_replica_time_to_first_token_seconds_bucket",
        "modelgrid_replica_inter_token_latency_seconds_bucket",
        "modelgrid_replica_prompt_tokens_total",
        "modelgrid_replica_generation_tokens_total",
        "modelgrid_replica_requests_running",
        "modelgrid_replica_requests_queued",
    ):
        assert f"\n{name}" in text, name
    samples = dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    labels = f'{{model="{stack.model}",pool="local"}}'
    assert float(samples[f"modelgrid_replica_generation_tokens_total{labels}"]) >= 4
    assert float(samples[f"modelgrid_replica_time_to_first_token_seconds_count{labels}"]) >= 1
    if stack.engine == "vllm":  # vLLM's own number, under our name; mlx-lm's server has none
        assert 0 <= float(samples[f"modelgrid_replica_kv_cache_usage_ratio{labels}"]) <= 1
    assert "vllm:" not in text  # engine metrics are mapped, not passed through


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json_is_400(http: httpx.Client, check_schema: Any, raw: bytes) -> None:
    reply = http.post(
        "/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(reply, 400, check_schema, code="invalid_json")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", "hot"),
        ("max_tokens", "many"),
        ("stream", {"yes": 1}),
        ("stream", "yes"),
        ("stream", 1),
        ("logprobs", "true"),
        ("n", "2"),
        ("max_tokens", 4.0),
        ("messages", "hi"),
        ("n", 1.5),
        ("stop", 7),
    ],
)
def test_wrong_types_are_400_naming_the_param(
    http: httpx.Client, stack: Stack, check_schema: Any, field: str, value: Any
) -> None:
    reply = http.post("/v1/chat/completions", json=chat_body(stack, **{field: value}))
    error = assert_error(reply, 400, check_schema)
    assert error["param"].split(".")[0] == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("temperature", -1),
        ("top_p", 1.5),
        ("top_k", -5),
        ("min_p", 2),
        ("presence_penalty", 3),
        ("frequency_penalty", -3),
        ("repetition_penalty", 0),
        ("n", 0),
        ("max_tokens", 0),
        ("max_completion_tokens", -1),
        ("top_logprobs", 50),
    ],
)
def test_out_of_range_is_400_naming_the_param(
    http: httpx.Client, stack: Stack, check_schema: Any, field: str, value: Any
) -> None:
    reply = http.post(
        "/v1/chat/completions", json=chat_body(stack, logprobs=True, **{field: value})
    )
    assert_error(reply, 400, check_schema, param=field)


def test_tool_choice_naming_no_listed_function_is_400_naming_tool_choice(
    http: httpx.Client, stack: Stack, check_schema: Any
) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    choice = {"type": "function", "function": {"name": "get_time"}}
    reply = http.post(
        "/v1/chat/completions", json=chat_body(stack, tools=tools, tool_choice=choice)
    )
    error = assert_error(reply, 400, check_schema, param="tool_choice")
    assert "get_time" in error["message"]


def test_completions_out_of_range_is_400(
    http: httpx.Client, stack: Stack, check_schema: Any
) -> None:
    reply = http.post("/v1/completions", json={"model": stack.model, "prompt": "x", "logprobs": 9})
    assert_error(reply, 400, check_schema, param="logprobs")


def test_missing_required_field_is_400(http: httpx.Client, stack: Stack, check_schema: Any) -> None:
    reply = http.post("/v1/completions", json={"model": stack.model})
    assert_error(reply, 400, check_schema, param="prompt")
    reply = http.post("/v1/chat/completions", json={"messages": CHAT["messages"]})
    assert_error(reply, 400, check_schema, param="model")


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"])
def test_unknown_model_is_404(http: httpx.Client, check_schema: Any, route: str) -> None:
    body = {"model": "gpt-nope", "prompt": "x", "input": "x", **CHAT}
    error = assert_error(
        http.post(route, json=body), 404, check_schema, param="model", code="model_not_found"
    )
    assert "gpt-nope" in error["message"]


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions"])
def test_too_long_prompt_is_400_naming_the_limit(
    http: httpx.Client, stack: Stack, check_schema: Any, route: str
) -> None:
    long_text = "hello world " * stack.max_model_len
    text: dict[str, Any] = {"prompt": long_text}  # each route gets only its own field
    if route == "/v1/chat/completions":
        text = {"messages": [{"role": "user", "content": long_text}]}
    body = {"model": stack.model, "max_tokens": 4, **text}
    error = assert_error(
        http.post(route, json=body), 400, check_schema, code="context_length_exceeded"
    )
    assert str(stack.max_model_len) in error["message"]


def test_output_limit_beyond_context_is_400(
    http: httpx.Client, stack: Stack, check_schema: Any
) -> None:
    reply = http.post(
        "/v1/completions",
        json={"model": stack.model, "prompt": "hi", "max_tokens": stack.max_model_len * 4},
    )
    error = assert_error(reply, 400, check_schema)
    assert str(stack.max_model_len) in error["message"]


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("GET", "/v1/chat/completions"),
        ("DELETE", "/v1/completions"),
        ("PUT", "/v1/embeddings"),
        ("POST", "/v1/models"),
        ("POST", "/health"),
    ],
)
def test_wrong_method_is_405(
    http: httpx.Client, check_schema: Any, method: str, route: str
) -> None:
    assert_error(http.request(method, route), 405, check_schema, code="method_not_allowed")


def test_unknown_route_is_404(http: httpx.Client, check_schema: Any) -> None:
    assert_error(http.get("/v1/nothing-here"), 404, check_schema, code="not_found")


# --- concurrency --------------------------------------------------------------------------------


async def test_32_parallel_streams_all_complete(stack: Stack, check_schema: Any) -> None:
    async def one(client: httpx.AsyncClient, i: int) -> list[str]:
        body = {
            "model": stack.model if i % 2 else stack.alias,
            "stream": True,
            "max_tokens": 16,
            "temperature": 1.0,
            "seed": i,
            "ignore_eos": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"count {i}"}],
        }
        async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            return [line async for line in reply.aiter_lines() if line]

    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=stack.url, timeout=120, limits=limits) as client:
        streams = await asyncio.wait_for(asyncio.gather(*(one(client, i) for i in range(32))), 180)
    for lines in streams:
        assert all(line.startswith("data: ") for line in lines)
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line[6:]) for line in lines[:-1]]
        for chunk in chunks:
            check_schema("CreateChatCompletionStreamResponse", chunk)
        assert chunks[-1]["usage"]["completion_tokens"] == 16
        assert len({c["id"] for c in chunks}) == 1


async def test_streams_arrive_as_they_are_generated_not_whole_at_the_end(stack: Stack) -> None:
    """8 streams at once, 128 tokens each, four times: each stream's tokens must arrive spread over
    its time, not in one burst at the end.

    A replica starved of CPU delivers streams whole when generation ends: on two cores, with
    vLLM's multiprocessing executor (docs/serving.md), this test failed 3 runs of 3, holding back
    10-22 of its 32 streams. A stream whose content arrived within the last quarter of its time
    counts as held back (a stream that waited in a queue first still spreads its tokens); one in
    eight is tolerated. No seed (the MLX server batches seeded requests too; vLLM always did).
    """

    async def one(client: httpx.AsyncClient) -> tuple[float, float]:
        body = chat_body(stack, stream=True, ignore_eos=True, max_tokens=128)
        sent = time.perf_counter()
        first = last = None
        async with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            assert reply.status_code == 200
            async for line in reply.aiter_lines():
                last = time.perf_counter() - sent
                if first is None and line.startswith("data: {") and _has_text(line[6:]):
                    first = last
        assert first is not None and last is not None
        return first, last

    timings: list[tuple[float, float]] = []
    async with httpx.AsyncClient(base_url=stack.url, timeout=120) as client:
        for _ in range(4):
            timings += await asyncio.gather(*(one(client) for _ in range(8)))
    held_back = [
        f"{first * 1000:.0f} of {last * 1000:.0f} ms"
        for first, last in timings
        if last - first < last / 4
    ]
    assert len(held_back) <= len(timings) // 8, f"first token at: {held_back}"


def _has_text(event: str) -> bool:
    choices = json.loads(event).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


# --- the cluster path: the same app through the Serve proxy ----------------------------------


def test_proxy_path_serves_the_same_routes(stack: Stack, check_schema: Any) -> None:
    with httpx.Client(base_url=stack.proxy_url, timeout=60) as proxy:
        assert proxy.get("/health").json() == {"status": "ok"}
        reply = proxy.post("/v1/chat/completions", json=chat_body(stack, max_tokens=3))
        assert reply.status_code == 200
        check_schema("CreateChatCompletionResponse", reply.json())
        body = chat_body(stack, stream=True, stream_options={"include_usage": True})
        with proxy.stream("POST", "/v1/chat/completions", json=body) as stream:
            lines = [line for line in stream.iter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["usage"]["completion_tokens"] >= 1
        assert_error(proxy.post("/v1/chat/completions", content=b"{"), 400, check_schema)
        assert_error(proxy.get("/v1/completions"), 405, check_schema)
