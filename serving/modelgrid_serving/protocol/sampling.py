"""Sampling parameters shared by completions and chat completions, with OpenAI's bounds.

Bounds are plain numbers (no torch): OpenAI documents temperature 0..2, top_p 0..1, penalties
-2..2, n 1..128; top_k, min_p and repetition_penalty are the engines' extensions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from .base import OpenAIBaseModel, invalid

Stop = str | Annotated[list[str], Field(max_length=4)] | None


class StreamOptions(OpenAIBaseModel):
    """``stream_options``: ``include_usage`` adds a final chunk with token counts."""

    include_usage: bool | None = None


class SamplingRequest(OpenAIBaseModel):
    """Fields every text-generation request shares."""

    model: str = Field(min_length=1)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stop: Stop = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    user: str | None = None

    # --- extensions (vLLM and others), not in OpenAI's API -------------------------------
    top_k: int | None = Field(
        default=None, ge=-1, description="Sample from the k likeliest tokens; -1 or 0 = all."
    )
    min_p: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Drop tokens below min_p x the top probability."
    )
    repetition_penalty: float | None = Field(
        default=None,
        gt=0.0,
        le=2.0,
        description="Multiplicative penalty on repeated tokens (1 = off).",
    )
    min_tokens: int | None = Field(default=None, ge=0)
    ignore_eos: bool | None = None

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> SamplingRequest:
        if self.stream_options is not None and not self.stream:
            raise invalid(
                "stream_options", "'stream_options' is only allowed when 'stream' is true"
            )
        return self

    def wants_usage_in_stream(self) -> bool:
        """True when a stream must end with a usage chunk."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    def with_usage_in_stream(self) -> Self:
        """This request, asking for the usage chunk if it streams (other stream options kept):
        the replica counts every stream's tokens, and drops that chunk for a client that did not
        ask for it."""
        if not self.stream:
            return self
        options = (self.stream_options or StreamOptions()).model_copy(
            update={"include_usage": True}
        )
        return self.model_copy(update={"stream_options": options})


ResponseFormatType = Literal["text", "json_object", "json_schema"]


class ResponseFormat(OpenAIBaseModel):
    """``response_format``: ``json_object`` = JSON mode; ``json_schema`` = structured output."""

    type: ResponseFormatType
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _json_schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and not self.json_schema:
            raise invalid(
                "response_format.json_schema",
                "'response_format.json_schema' is required when its type is 'json_schema'",
            )
        return self
