"""Every route and parameter through the real OpenAI SDK (sync, async, streaming), on each engine.

The tiny model emits garbage by design: assert on shapes, counts and schemas, never on words.
Where MLX cannot honour a parameter (log probabilities, list prompts, echo), the test asserts its
400 naming it (``refused_by_mlx``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from local_stack import Stack
from serving_support import refused_by_mlx

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with stack.client() as sdk:
        yield sdk


@pytest.fixture
def aclient(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{stack.url}/v1", api_key="unused", max_retries=0, timeout=60
    )


def dump(obj: Any) -> dict[str, Any]:
    return obj.model_dump(mode="json", exclude_unset=True)


# --- models ---------------------------------------------------------------------------------


def test_models_list_has_name_and_alias(
    client: openai.OpenAI, stack: Stack, check_schema: Any
) -> None:
    page = client.models.list()
    assert [m.id for m in page.data] == [stack.model, stack.alias]
    check_schema(
        "ListModelsResponse", {"object": page.object, "data": [dump(m) for m in page.data]}
    )


@pytest.mark.parametrize("name", ["model", "alias"])
def test_models_retrieve_by_name_or_alias(
    client: openai.OpenAI, stack: Stack, check_schema: Any, name: str
) -> None:
    model = client.models.retrieve(getattr(stack, name))
    assert model.id == getattr(stack, name)
    check_schema("Model", dump(model))


def test_models_retrieve_unknown_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


def test_routes_answer_without_v1(stack: Stack) -> None:
    """A client given the bare URL (as some local servers document it) reaches the same API."""
    with openai.OpenAI(base_url=stack.url, api_key="unused", max_retries=0, timeout=60) as bare:
        assert [m.id for m in bare.models.list().data] == [stack.model, stack.alias]
        reply = bare.chat.completions.create(model=stack.alias, messages=MESSAGES, max_tokens=2)
        assert reply.model == stack.alias and reply.choices[0].message.role == "assistant"


# --- chat -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["model", "alias"])
def test_chat_sync(client: openai.OpenAI, stack: Stack, check_schema: Any, name: str) -> None:
    reply = client.chat.completions.create(
        model=getattr(stack, name), messages=MESSAGES, max_tokens=8
    )
    assert reply.object == "chat.completion"
    assert reply.model == getattr(stack, name)
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None and 1 <= reply.usage.completion_tokens <= 8
    check_schema("CreateChatCompletionResponse", dump(reply))


def test_chat_temperature_zero_is_greedy(client: openai.OpenAI, stack: Stack) -> None:
    texts = {
        client.chat.completions.create(
            model=stack.model, messages=MESSAGES, max_tokens=12, temperature=0
        )
        .choices[0]
        .message.content
        for _ in range(3)
    }
    assert len(texts) == 1


def test_chat_seed_makes_sampling_repeatable(client: openai.OpenAI, stack: Stack) -> None:
    def sample() -> str | None:
        return (
            client.chat.completions.create(
                model=stack.model,
                messages=MESSAGES,
                max_tokens=12,
                temperature=1.0,
                seed=1234,
            )
            .choices[0]
            .message.content
        )

    assert sample() == sample()


@pytest.mark.parametrize(
    "params",
    [
        {"top_p": 0.5},
        {"presence_penalty": 1.5, "frequency_penalty": -1.0},
        {"stop": ["a", "e"]},
        {"stop": "o"},
        {"extra_body": {"top_k": 5, "min_p": 0.1, "repetition_penalty": 1.3}},
        {"user": "someone"},
    ],
    ids=lambda p: ",".join(p.get("extra_body", p)),
)
def test_chat_sampling_parameters(
    client: openai.OpenAI, stack: Stack, check_schema: Any, params: dict[str, Any]
) -> None:
    reply = client.chat.completions.create(
        model=stack.model, messages=MESSAGES, max_tokens=8, temperature=0.8, **params
    )
    check_schema("CreateChatCompletionResponse", dump(reply))


def test_chat_n_returns_n_choices(client: openai.OpenAI, stack: Stack) -> None:
    reply = client.chat.completions.create(
        model=stack.model,
        messages=MESSAGES,
        max_tokens=4,
        n=3,
        temperature=1.0,
        extra_body={"ignore_eos": True},
    )
    assert sorted(c.index for c in reply.choices) == [0, 1, 2]
    assert reply.usage is not None and reply.usage.completion_tokens == 3 * 4  # every choice
    assert len({c.message.content for c in reply.choices}) > 1  # sampled apart


def test_chat_n_streams_every_choice(client: openai.OpenAI, stack: Stack) -> None:
    stream = client.chat.completions.create(
        model=stack.model,
        messages=MESSAGES,
        max_tokens=4,
        n=2,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    finished = {c.choices[0].index: c.choices[0].finish_reason for c in chunks if c.choices}
    assert finished == {0: "length", 1: "length"}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2 * 4


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_chat_output_limit(client: openai.OpenAI, stack: Stack, field: str) -> None:
    reply = client.chat.completions.create(
        model=stack.model, messages=MESSAGES, extra_body={"ignore_eos": True}, **{field: 5}
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert reply.choices[0].finish_reason == "length"


def test_chat_logprobs(client: openai.OpenAI, stack: Stack, check_schema: Any) -> None:
    with refused_by_mlx(stack, "logprobs"):
        reply = client.chat.completions.create(
            model=stack.model,
            messages=MESSAGES,
            max_tokens=4,
            logprobs=True,
            top_logprobs=3,
            extra_body={"ignore_eos": True},
        )
        content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
        assert content is not None and len(content) == 4
        assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
        check_schema("CreateChatCompletionResponse", dump(reply))


def test_chat_json_mode(client: openai.OpenAI, stack: Stack, check_schema: Any) -> None:
    reply = client.chat.completions.create(
        model=stack.model,
        messages=MESSAGES,
        max_tokens=16,
        response_format={"type": "json_object"},
    )
    check_schema("CreateChatCompletionResponse", dump(reply))
    content = reply.choices[0].message.content or ""
    assert content.lstrip().startswith("{")  # held to an object from its first token


def test_chat_tools_are_accepted(client: openai.OpenAI, stack: Stack, check_schema: Any) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    reply = client.chat.completions.create(
        model=stack.model, messages=MESSAGES, max_tokens=8, tools=tools, tool_choice="none"
    )  # type: ignore[arg-type]
    check_schema("CreateChatCompletionResponse", dump(reply))


def test_chat_stream_with_usage(client: openai.OpenAI, stack: Stack, check_schema: Any) -> None:
    chunks = list(
        client.chat.completions.create(
            model=stack.alias,
            messages=MESSAGES,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    for chunk in chunks:
        check_schema("CreateChatCompletionStreamResponse", dump(chunk))
    *body, last = chunks
    assert {c.model for c in chunks} == {stack.alias}
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens == 6
    assert all(c.usage is None for c in body)
    assert body[-1].choices[0].finish_reason == "length"


def test_chat_stream_without_usage_has_no_usage_chunk(client: openai.OpenAI, stack: Stack) -> None:
    chunks = list(
        client.chat.completions.create(
            model=stack.model, messages=MESSAGES, max_tokens=4, stream=True
        )
    )
    assert chunks and all(c.choices and c.usage is None for c in chunks)


async def test_chat_async_and_async_stream(aclient: openai.AsyncOpenAI, stack: Stack) -> None:
    async with aclient:
        reply = await aclient.chat.completions.create(
            model=stack.model, messages=MESSAGES, max_tokens=4
        )
        assert reply.choices[0].message.role == "assistant"
        stream = await aclient.chat.completions.create(
            model=stack.model, messages=MESSAGES, max_tokens=4, stream=True
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[-1].choices[0].finish_reason in {"length", "stop"}


# --- completions --------------------------------------------------------------------------------


def test_completions_sync(client: openai.OpenAI, stack: Stack, check_schema: Any) -> None:
    reply = client.completions.create(
        model=stack.alias,
        prompt="hello world",
        max_tokens=6,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert reply.object == "text_completion"
    assert reply.usage is not None and reply.usage.completion_tokens == 6
    check_schema("CreateCompletionResponse", dump(reply))


def test_completions_n_and_logprobs(client: openai.OpenAI, stack: Stack, check_schema: Any) -> None:
    # MLX refuses each of these alone too (test_mlx_engine.py); here the batch prompt comes first.
    with refused_by_mlx(stack, "prompt"):
        reply = client.completions.create(
            model=stack.model,
            prompt=["hello", "world"],
            max_tokens=3,
            n=2,
            logprobs=2,
            temperature=1.0,
            seed=3,
            extra_body={"ignore_eos": True},
        )
        assert len(reply.choices) == 4
        for choice in reply.choices:
            assert choice.logprobs is not None and len(choice.logprobs.tokens or []) == 3
            # Up to logprobs + 1 entries: the sampled token is added when not among the top ones.
            assert all(2 <= len(top) <= 3 for top in choice.logprobs.top_logprobs or [])
        check_schema("CreateCompletionResponse", dump(reply))


def test_completions_echo(client: openai.OpenAI, stack: Stack) -> None:
    # No schema check: with echo, the first prompt token has no logprob (null), as with OpenAI.
    with refused_by_mlx(stack, "echo"):
        reply = client.completions.create(
            model=stack.model, prompt="hello", max_tokens=2, echo=True, logprobs=1
        )
        assert reply.choices[0].text.startswith("hello")


def test_completions_stream_with_usage(
    client: openai.OpenAI, stack: Stack, check_schema: Any
) -> None:
    chunks = list(
        client.completions.create(
            model=stack.model,
            prompt="the quick",
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    for chunk in chunks[:-1]:
        body = dump(chunk)
        # The description reuses the final response's schema for chunks; OpenAI's own streams
        # carry finish_reason null until the last chunk, so only that field is relaxed here.
        for choice in body["choices"]:
            if choice.get("finish_reason") is None:
                choice["finish_reason"] = "length"
        check_schema("CreateCompletionResponse", body)


async def test_completions_async(aclient: openai.AsyncOpenAI, stack: Stack) -> None:
    async with aclient:
        reply = await aclient.completions.create(model=stack.model, prompt="hi", max_tokens=3)
        assert len(reply.choices) == 1


# --- embeddings --------------------------------------------------------------------------------


def test_embeddings_on_a_generative_model_is_400(client: openai.OpenAI, stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=stack.model, input="hello")
    assert info.value.code == "unsupported_for_model"
    assert "embed" in info.value.message
