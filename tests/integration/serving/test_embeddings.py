"""Embeddings, on the tiny model served as an embedding model (its own stack, started last)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from local_stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def client(embedding_stack: Stack) -> Iterator[openai.OpenAI]:
    with embedding_stack.client() as sdk:
        yield sdk


def test_embeddings_single_and_batch(
    client: openai.OpenAI, embedding_stack: Stack, check_schema: Any
) -> None:
    one = client.embeddings.create(model=embedding_stack.model, input="hello world")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 128  # the hidden size
    check_schema("CreateEmbeddingResponse", one.model_dump(mode="json", exclude_unset=True))
    batch = client.embeddings.create(model=embedding_stack.model, input=["a", "b c", "d e f"])
    assert [d.index for d in batch.data] == [0, 1, 2]
    assert batch.usage.prompt_tokens > 0


def test_embeddings_base64(embedding_stack: Stack) -> None:
    import httpx

    reply = httpx.post(
        f"{embedding_stack.url}/v1/embeddings",
        timeout=60,
        json={"model": embedding_stack.model, "input": "hello", "encoding_format": "base64"},
    )
    assert reply.status_code == 200, reply.text
    raw = base64.b64decode(reply.json()["data"][0]["embedding"])
    assert len(raw) == 128 * 4  # float32


def test_chat_on_an_embedding_model_is_400(client: openai.OpenAI, embedding_stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=embedding_stack.model, max_tokens=2, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.code == "unsupported_for_model"
