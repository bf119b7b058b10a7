"""The replica's routes over a scripted engine: routing, validation, SSE relay, metrics.

The engine here is a test double that replays fixed outputs; the integration tier runs vLLM.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from modelgrid_serving.api import build_api, drop_nulls
from modelgrid_serving.config import AppConfig
from modelgrid_serving.engines.events import DONE, Delta, StreamError, StreamEvent, Usage
from modelgrid_serving.errors import ContextLengthExceeded, EngineError
from modelgrid_serving.metrics import Metrics
from modelgrid_serving.protocol import ChatCompletionRequest, SamplingRequest

pytestmark = pytest.mark.unit


def make_config(**overrides: Any) -> AppConfig:
    fields: dict[str, Any] = {
        "model_name": "tiny",
        "aliases": ("tiny-chat",),
        "model_source": "/models/tiny",
        "pool": {
            "name": "local",
            "accelerator": "cpu",
            "engine": "vllm",
            "min_replicas": 1,
            "max_replicas": 1,
        },
    }
    return AppConfig.model_validate({**fields, **overrides})


def chunk(content: str | None = None, *, usage: dict[str, int] | None = None) -> str:
    """An engine's chunk as compact JSON text."""
    choices = [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    body: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "tiny",
        "choices": choices,
    }
    if usage:
        body["usage"] = usage
    return json.dumps(body, separators=(",", ":"))


class ScriptedEngine:
    kind = "scripted"
    version = "0"

    def __init__(self) -> None:
        self.requests: list[SamplingRequest] = []
        self.refuse: Exception | None = None
        self.events: list[StreamEvent] = [
            Delta(chunk("a")),
            Delta(chunk("b")),
            Usage(
                3, 2, chunk(usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
            ),
            DONE,
        ]

    def max_model_len(self) -> int | None:
        return 512

    async def chat(self, request: SamplingRequest) -> Any:
        self.requests.append(request)
        if self.refuse:
            raise self.refuse
        if request.stream:
            return self._stream()
        return {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "x", "annotations": None},
                    "logprobs": None,
                    "finish_reason": "length",
                }
            ],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 1,
                "total_tokens": 4,
                "prompt_tokens_details": None,
            },
        }

    async def _stream(self) -> AsyncIterator[StreamEvent]:
        for event in self.events:
            yield event

    async def completions(self, request: SamplingRequest) -> Any:
        return await self.chat(request)

    async def embeddings(self, request: Any) -> dict[str, Any]:
        raise AssertionError("not scripted")

    async def check_health(self) -> None:
        return None


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(pool="local")


@pytest.fixture
def client(engine: ScriptedEngine, metrics: Metrics) -> TestClient:
    return TestClient(build_api(engine, make_config(), metrics=metrics, created=1))


CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def test_chat_alias_reaches_the_engine_as_canonical_name(
    client: TestClient, engine: ScriptedEngine
) -> None:
    reply = client.post("/v1/chat/completions", json={"model": "tiny-chat", **CHAT})
    assert reply.status_code == 200
    assert engine.requests[0].model == "tiny"
    assert reply.json()["model"] == "tiny-chat"  # echoed as the client named it


def test_engine_gets_the_parsed_request_with_its_extensions(
    client: TestClient, engine: ScriptedEngine
) -> None:
    body = {"model": "tiny", "temperature": 0.5, "guided_json": {"type": "object"}, **CHAT}
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    request = engine.requests[0]
    assert isinstance(request, ChatCompletionRequest) and request.temperature == 0.5
    assert request.model_extra == {"guided_json": {"type": "object"}}


def test_stream_echoes_the_alias(client: TestClient) -> None:
    body = {"model": "tiny-chat", "stream": True, "stream_options": {"include_usage": True}, **CHAT}
    frames = [f for f in client.post("/v1/chat/completions", json=body).text.split("\n\n") if f]
    models = {json.loads(f[6:])["model"] for f in frames[:-1]}
    assert models == {"tiny-chat"}


def test_chat_response_drops_unset_extensions(client: TestClient) -> None:
    body = client.post("/v1/chat/completions", json={"model": "tiny", **CHAT}).json()
    assert "annotations" not in body["choices"][0]["message"]
    assert body["choices"][0]["logprobs"] is None  # required by OpenAI, kept
    assert "prompt_tokens_details" not in body["usage"]


def test_stream_hides_usage_unless_asked(client: TestClient, engine: ScriptedEngine) -> None:
    text = client.post("/v1/chat/completions", json={"model": "tiny", "stream": True, **CHAT}).text
    options = engine.requests[0].stream_options
    assert options is not None and options.include_usage  # we always count
    frames = [f for f in text.split("\n\n") if f]
    assert frames[-1] == "data: [DONE]" and len(frames) == 3
    assert '"usage"' not in text


def test_stream_keeps_usage_when_asked(client: TestClient) -> None:
    body = {"model": "tiny", "stream": True, "stream_options": {"include_usage": True}, **CHAT}
    frames = [f for f in client.post("/v1/chat/completions", json=body).text.split("\n\n") if f]
    assert len(frames) == 4 and '"usage"' in frames[2]


def test_stream_keeps_the_clients_other_stream_options(
    client: TestClient, engine: ScriptedEngine
) -> None:
    options = {"include_usage": False, "continuous_usage_stats": True}
    body = {"model": "tiny", "stream": True, "stream_options": options, **CHAT}
    client.post("/v1/chat/completions", json=body)
    sent = engine.requests[0].stream_options
    assert sent is not None and sent.include_usage
    assert sent.model_extra == {"continuous_usage_stats": True}


def test_stream_error_event_ends_the_stream_with_an_error_body(
    client: TestClient, engine: ScriptedEngine, metrics: Metrics
) -> None:
    engine.events = [Delta(chunk("a")), StreamError(EngineError("the engine died")), DONE]
    text = client.post("/v1/chat/completions", json={"model": "tiny", "stream": True, **CHAT}).text
    frames = [f for f in text.split("\n\n") if f]
    assert len(frames) == 3 and frames[-1] == "data: [DONE]"
    error = json.loads(frames[1][len("data: ") :])["error"]
    assert error["code"] == "engine_error" and error["message"] == "the engine died"
    failed = {"model": "tiny", "pool": "local", "route": "chat", "status": "500"}
    assert metrics.registry.get_sample_value("modelgrid_replica_requests_total", failed) == 1


def test_metrics_count_stream_tokens(client: TestClient, metrics: Metrics) -> None:
    client.post("/v1/chat/completions", json={"model": "tiny", "stream": True, **CHAT})

    def sample(name: str, **labels: str) -> float | None:
        """The sample of the replica's ``name`` for this model and pool."""
        return metrics.registry.get_sample_value(name, {"model": "tiny", "pool": "local", **labels})

    assert sample("modelgrid_replica_generation_tokens_total") == 2
    assert sample("modelgrid_replica_time_to_first_token_seconds_count") == 1
    assert sample("modelgrid_replica_inter_token_latency_seconds_count") == 1
    assert sample("modelgrid_replica_requests_total", route="chat", status="200") == 1
    assert sample("modelgrid_replica_requests_running") == 0
    assert sample("modelgrid_replica_requests_queued") == 0


def test_engine_refusal_is_answered_in_openai_shape(
    client: TestClient, engine: ScriptedEngine, metrics: Metrics
) -> None:
    engine.refuse = ContextLengthExceeded("maximum context length is 512 tokens", param="messages")
    reply = client.post("/v1/chat/completions", json={"model": "tiny", **CHAT})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "context_length_exceeded"
    assert (
        metrics.registry.get_sample_value(
            "modelgrid_replica_requests_total",
            {"model": "tiny", "pool": "local", "route": "chat", "status": "400"},
        )
        == 1
    )


def test_metrics_count_a_refused_request_of_a_known_model(
    client: TestClient, metrics: Metrics
) -> None:
    body = {"model": "tiny-chat", "max_tokens": -1, **CHAT}
    assert client.post("/v1/chat/completions", json=body).status_code == 400
    refused = {"model": "tiny", "pool": "local", "route": "chat", "status": "400"}
    value = metrics.registry.get_sample_value
    assert value("modelgrid_replica_requests_total", refused) == 1
    assert value("modelgrid_replica_requests_queued", {"model": "tiny", "pool": "local"}) == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/chat/completions", b"{oops", 400, "invalid_json"),
        (
            "POST",
            "/v1/chat/completions",
            json.dumps({"model": "gpt", **CHAT}).encode(),
            404,
            "model_not_found",
        ),
        (
            "POST",
            "/v1/chat/completions",
            json.dumps({"model": "tiny", "temperature": 9, **CHAT}).encode(),
            400,
            "invalid_value",
        ),
        ("GET", "/v1/chat/completions", None, 405, "method_not_allowed"),
        ("GET", "/v2/nothing", None, 404, "not_found"),
        ("GET", "/v1/models/gpt", None, 404, "model_not_found"),
    ],
)
def test_errors_have_openai_shape(
    client: TestClient, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    reply = client.request(method, path, content=body)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code


def test_models_list_names_and_aliases(client: TestClient) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [(m["id"], m["root"]) for m in data] == [("tiny", None), ("tiny-chat", "tiny")]


def test_routes_answer_without_v1_too(client: TestClient, engine: ScriptedEngine) -> None:
    assert client.get("/models").json() == client.get("/v1/models").json()
    assert client.get("/models/tiny-chat").json()["root"] == "tiny"
    assert client.post("/chat/completions", json={"model": "tiny", **CHAT}).status_code == 200
    assert client.post("/completions", json={"model": "tiny", "prompt": "x"}).status_code == 200
    assert [r.model for r in engine.requests] == ["tiny", "tiny"]


def test_root_and_health(client: TestClient) -> None:
    assert client.get("/").json()["models"] == ["tiny", "tiny-chat"]
    assert client.get("/health").json() == {"status": "ok"}


def test_drop_nulls_keeps_required_nullable_keys() -> None:
    assert drop_nulls({"a": None, "content": None, "b": [{"c": None, "logprobs": None}]}) == {
        "content": None,
        "b": [{"logprobs": None}],
    }
