"""The engine contract: the one interface the OpenAI routes call, whatever runs the model.

Requests arrive as validated OpenAI bodies (dicts, ``model`` already the canonical name).

``chat`` and ``completions`` return either

* one ``dict``: the whole response body, when the request did not ask to stream; or
* an async iterator of ``str``: Server-Sent-Events frames, each ``"data: {json}\\n\\n"`` holding
  one OpenAI chunk, the last one ``"data: [DONE]\\n\\n"``. A stream whose request has
  ``stream_options.include_usage`` ends with a chunk whose ``choices`` is empty and whose
  ``usage`` counts the tokens. If the engine fails mid-stream it yields one ``data:`` frame with
  an OpenAI error body, then ``[DONE]``.

``embeddings`` returns one ``dict``. Every method raises :class:`~modelgrid_serving.errors.APIError`
subclasses (never bare engine exceptions) for requests it refuses before producing output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

EngineOutput = dict[str, Any] | AsyncIterator[str]


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

    async def chat(self, body: dict[str, Any]) -> EngineOutput:
        """Run a chat completion (see the module docstring for what comes back)."""
        ...

    async def completions(self, body: dict[str, Any]) -> EngineOutput:
        """Run a legacy completion."""
        ...

    async def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        """Embed the input (embedding models only; others raise ``UnsupportedForModel``)."""
        ...

    async def check_health(self) -> None:
        """Return when the engine can serve; raise when it cannot."""
        ...
