"""``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import OpenAIBaseModel, invalid
from .sampling import ResponseFormat, SamplingRequest

FUNCTION_NAME = r"^[A-Za-z0-9_-]{1,64}$"
"""What OpenAI allows as a function name."""


class FunctionCall(OpenAIBaseModel):
    """The function an assistant message called: ``arguments`` is JSON text, as the model wrote it."""

    name: str = Field(min_length=1)
    arguments: str


class ToolCall(OpenAIBaseModel):
    """One call in an assistant message's ``tool_calls`` (a history sent back by an agent)."""

    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


CONTENT_PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal", "audio_url",
                      "video_url", "image_embeds", "audio_embeds")  # fmt: skip
"""OpenAI's content part types, and vLLM's extensions (``*_url``, ``*_embeds``)."""


class ContentPart(OpenAIBaseModel):
    """One part of a message's content: its type is known, a text part has text. Whether the
    model can take an image or audio part is the engine's to say (a 400 naming ``messages``)."""

    type: Literal[CONTENT_PART_TYPES]  # type: ignore[valid-type]
    text: str | None = None

    @model_validator(mode="after")
    def _text_part_has_text(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a 'text' part needs 'text'")
        return self


class ChatMessage(OpenAIBaseModel):
    """One message. Content may be text or a list of parts; engines check what they can take."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(OpenAIBaseModel):
    """A function a model may call."""

    name: str = Field(pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(OpenAIBaseModel):
    """``tools[]``: only functions exist."""

    type: Literal["function"] = "function"
    function: FunctionDefinition


class FunctionName(OpenAIBaseModel):
    """``tool_choice.function``: which function must be called."""

    name: str = Field(min_length=1)


class NamedToolChoice(OpenAIBaseModel):
    """``tool_choice: {"type": "function", "function": {"name": ...}}``: call this function."""

    type: Literal["function"]
    function: FunctionName


class ChatCompletionRequest(SamplingRequest):
    """OpenAI's ``CreateChatCompletionRequest``, in its field order."""

    messages: list[ChatMessage] = Field(min_length=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(default=None, min_length=1, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatCompletionRequest:
        if self.top_logprobs and not self.logprobs:
            raise invalid("top_logprobs", "'logprobs' must be true when 'top_logprobs' is set")
        return self

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ChatCompletionRequest:
        choice = self.tool_choice
        if choice is None or choice == "none":
            return self
        if not self.tools:
            raise invalid("tool_choice", "'tool_choice' is only allowed when 'tools' are given")
        if isinstance(choice, NamedToolChoice):
            names = [tool.function.name for tool in self.tools]
            if choice.function.name not in names:
                raise invalid(
                    "tool_choice",
                    f"'tool_choice' names the function '{choice.function.name}', which is not "
                    f"in 'tools' ({', '.join(names)})",
                )
        return self

    @model_validator(mode="after")
    def _tool_messages_answer_calls(self) -> ChatCompletionRequest:
        called: set[str] = set()
        for index, message in enumerate(self.messages):
            called.update(call.id for call in message.tool_calls or ())
            if message.role != "tool":
                continue
            if message.tool_call_id is None:
                raise invalid(
                    f"messages.{index}.tool_call_id", "a 'tool' message needs 'tool_call_id'"
                )
            if message.tool_call_id not in called:
                raise invalid(
                    f"messages.{index}.tool_call_id",
                    f"the 'tool' message answers '{message.tool_call_id}', which no earlier "
                    "assistant message's 'tool_calls' holds",
                )
        return self

    def output_limit(self) -> int | None:
        """``max_completion_tokens`` (the new name) wins over ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens
