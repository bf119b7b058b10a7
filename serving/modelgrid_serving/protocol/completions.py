"""``POST /v1/completions``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .sampling import SamplingRequest

Prompt = (
    str
    | Annotated[list[str], Field(min_length=1)]
    | Annotated[list[int], Field(min_length=1)]
    | Annotated[list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1)]
)


class CompletionRequest(SamplingRequest):
    """OpenAI's ``CreateCompletionRequest`` (legacy completions), in its field order."""

    prompt: Prompt
    best_of: int | None = Field(default=None, ge=1, le=20)
    echo: bool | None = False
    logprobs: int | None = Field(default=None, ge=0, le=5)
    suffix: str | None = None
