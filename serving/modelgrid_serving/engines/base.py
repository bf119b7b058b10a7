"""The engine contract: the one interface the OpenAI routes call, whatever runs the model.

Requests arrive parsed: the routes validate the body into the protocol's model
(:class:`~modelgrid_serving.protocol.ChatCompletionRequest`, ...), ``model`` already the canonical
name, and a stream always asks for usage (``stream_options.include_usage``: the replica counts
tokens from it). Fields the protocol does not declare ride along in the model's extras.

``chat`` and ``completions`` return either

* one ``dict``: the whole response body, when the request did not ask to stream; or
* an async iterator of :data:`~.events.StreamEvent`: the deltas, the usage event, and
  :data:`~.events.DONE` last; or a :class:`~.events.StreamError` last if the engine fails after
  the stream began (raising then is the same to the replica). The replica writes the SSE.

``embeddings`` returns one ``dict``. Every method raises :class:`~modelgrid_serving.errors.APIError`
subclasses (never bare engine exceptions) for requests it refuses before producing output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from ..protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from .events import StreamEvent

EngineOutput = dict[str, Any] | AsyncIterator[StreamEvent]


@runtime_checkable
class Engine(Protocol):
    """What a replica's routes need from an engine."""

    kind: str
    """"vllm" or "mlx"; shown by ``GET /``."""
    version: str | None
    """The engine's version, when known."""

    def max_model_len(self) -> int | None:
        """The context length, prompt plus output, in tokens."""
        ...

    async def chat(self, request: ChatCompletionRequest) -> EngineOutput:
        """Run a chat completion (see the module docstring for what comes back)."""
        ...

    async def completions(self, request: CompletionRequest) -> EngineOutput:
        """Run a legacy completion."""
        ...

    async def embeddings(self, request: EmbeddingRequest) -> dict[str, Any]:
        """Embed the input (embedding models only; others raise ``UnsupportedForModel``)."""
        ...

    async def check_health(self) -> None:
        """Return when the engine can serve; raise when it cannot."""
        ...
