"""The gateway in front of a real Ray Serve backend (vLLM CPU on the tiny model) and an MLX one.

The Serve application is the shared local stack, reached through the Serve proxy (the path a
cluster's gateway takes). The gateway serves it under its own name and alias (the backend's
name for it is ``tiny``), next to a model on an mlx_lm.server: a merged listing of two models
on two different engines, routing, streaming, keys and limits, and ``/v1/gpu/info`` answered by
the Serve replica itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from gateway_support import Backends, Gateway, Servers, backend, free_port
from local_stack import Stacks
from modelgrid_serving.gateway.auth import hash_key
from polling import wait_for

pytestmark = pytest.mark.integration

KEY = "sk-serve-test-0001"
NARROW_KEY = "sk-serve-test-0002"
MESSAGES = [{"role": "user", "content": "say hello"}]


@pytest.fixture(scope="module")
def fronted(
    stacks: Stacks, backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A keyed gateway: ``serve-tiny`` (alias ``serve-chat``) on Serve, ``mlx-tiny`` on MLX."""
    stack = stacks.get("chat")
    config = {
        "models": [
            {
                "name": "serve-tiny",
                "aliases": ["serve-chat"],
                "backends": [{"url": stack.proxy_url + "/v1", "model": stack.model, "pool": "cpu"}],
            },
            {"name": "mlx-tiny", "backends": [backend(backends.a, backends.tiny, "apple")]},
            {"name": "serve-gone", "backends": [{"url": f"http://127.0.0.1:{free_port()}/v1"}]},
        ],
        "auth": {
            "enabled": True,
            "keys": [
                {"name": "all", "sha256": hash_key(KEY)},
                {
                    "name": "narrow",
                    "sha256": hash_key(NARROW_KEY),
                    "models": ["serve-chat"],
                    "requests_per_minute": 2,
                },
            ],
        },
        "limits": {"health_interval_s": 0.5, "max_body_bytes": 65536},
    }
    with Servers(tmp_path_factory.mktemp("gateway-serve")) as servers:
        gateway = servers.gateway(config, name="gateway-serve")
        wait_for(
            lambda: len(_get(gateway, "/v1/models").json()["data"]) == 3,
            timeout=30,
            what="the gateway to list serve-tiny, serve-chat and mlx-tiny",
        )
        yield gateway


def _get(gateway: Gateway, path: str, key: str | None = KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(gateway.url + path, headers=headers, timeout=30)


def wire(obj: Any) -> dict[str, Any]:
    """What came over the wire (the SDK's model without the fields it filled in itself)."""
    return obj.model_dump(mode="json", exclude_unset=True)


def sdk(gateway: Gateway, key: str = KEY) -> openai.OpenAI:
    """A client of the gateway (close it: ``with sdk(...) as client``)."""
    return openai.OpenAI(base_url=gateway.v1, api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client(fronted: Gateway) -> Iterator[openai.OpenAI]:
    """The SDK with the key that may use every model."""
    with sdk(fronted) as client:
        yield client


def test_listing_merges_models_of_two_engines(
    fronted: Gateway, client: openai.OpenAI, check_schema: Callable[[str, Any], None]
) -> None:
    listed = _get(fronted, "/v1/models").json()
    check_schema("ListModelsResponse", listed)
    assert sorted(m.id for m in client.models.list()) == [
        "mlx-tiny",
        "serve-chat",
        "serve-tiny",
    ]  # serve-gone: known, not ready


@pytest.mark.parametrize("model", ["serve-tiny", "serve-chat", "mlx-tiny"])
def test_chat_is_routed_by_name_and_alias(
    client: openai.OpenAI, model: str, check_schema: Callable[[str, Any], None]
) -> None:
    reply = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=5)
    if model.startswith("serve-"):  # our replica's body; mlx_lm.server's is relayed as it is
        check_schema("CreateChatCompletionResponse", wire(reply))
    assert reply.model == model  # the backend's name (tiny, or a path) is mapped back
    assert reply.usage is not None and reply.usage.completion_tokens >= 1


def test_stream_through_serve_arrives_chunk_by_chunk_with_usage(
    client: openai.OpenAI, check_schema: Callable[[str, Any], None]
) -> None:
    stream = client.chat.completions.create(
        model="serve-chat",
        messages=MESSAGES,
        max_tokens=12,
        temperature=0,
        extra_body={"ignore_eos": True},
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    for chunk in chunks:
        check_schema("CreateChatCompletionStreamResponse", wire(chunk))
        assert chunk.model == "serve-chat"
    text_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(text_chunks) >= 2, "the answer came in one piece: something buffered it"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 12


def test_completion_stream_through_serve(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model="serve-tiny", prompt="hello", max_tokens=6, stream=True
    )
    texts = [c.choices[0].text for c in stream if c.choices]
    assert len(texts) >= 2 and all(isinstance(t, str) for t in texts)


def test_gpu_info_is_answered_by_the_serve_replica(fronted: Gateway) -> None:
    answer = _get(fronted, "/v1/gpu/info").json()
    lines = {line["model"]: line for line in answer["backends"]}
    assert set(lines) == {"serve-tiny", "mlx-tiny"}  # serve-gone has no ready backend
    serve = lines["serve-tiny"]
    assert (serve["accelerator"], serve["gpus"]) == ("cpu", 0)  # this machine has no GPU
    assert serve["node"]
    assert lines["mlx-tiny"]["error"] == "HTTP 404"  # mlx_lm.server has no such route
    assert answer["gpus"] == []


def test_keys_allowlist_and_rate_limit_in_front_of_serve(fronted: Gateway) -> None:
    assert _get(fronted, "/v1/models", key=None).status_code == 401
    with sdk(fronted, key="sk-wrong") as wrong, pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="serve-tiny", messages=MESSAGES, max_tokens=2)
    with sdk(fronted, key=NARROW_KEY) as narrow:
        assert sorted(m.id for m in narrow.models.list()) == ["serve-chat", "serve-tiny"]
        with pytest.raises(openai.NotFoundError):  # not its to use: as if it did not exist
            narrow.chat.completions.create(model="mlx-tiny", messages=MESSAGES, max_tokens=2)
        narrow.chat.completions.create(model="serve-tiny", messages=MESSAGES, max_tokens=2)
        narrow.chat.completions.create(model="serve-tiny", messages=MESSAGES, max_tokens=2)
        with pytest.raises(openai.RateLimitError) as refused:
            narrow.chat.completions.create(model="serve-tiny", messages=MESSAGES, max_tokens=2)
    headers = refused.value.response.headers
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"


def test_unknown_unready_and_oversized_in_front_of_serve(fronted: Gateway) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    post = f"{fronted.v1}/chat/completions"
    unknown = httpx.post(post, json={"model": "nope", "messages": MESSAGES}, headers=auth)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "model_not_found")
    gone = httpx.post(post, json={"model": "serve-gone", "messages": MESSAGES}, headers=auth)
    assert gone.status_code == 503 and int(gone.headers["retry-after"]) >= 1
    big = json.dumps({"model": "serve-tiny", "messages": MESSAGES, "pad": "x" * 70000})
    oversized = httpx.post(post, content=big, headers={**auth, "content-type": "application/json"})
    assert oversized.status_code == 413 and oversized.json()["error"]["type"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stream": "yes"}, "stream"),  # refused by the replica, relayed as it is
        ({"n": "2"}, "n"),  # refused by the gateway, which reads n for its bound
        ({"max_tokens": 8.0}, "max_tokens"),
        (
            {
                "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            },
            "tool_choice",
        ),
    ],
)
def test_client_mistakes_through_the_gateway_are_400_naming_the_field(
    fronted: Gateway, fields: dict[str, Any], param: str
) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    body = {"model": "serve-chat", "messages": MESSAGES, "max_tokens": 2, **fields}
    reply = httpx.post(f"{fronted.v1}/chat/completions", json=body, headers=auth, timeout=60)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
