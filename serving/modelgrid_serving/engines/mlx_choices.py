"""The MLX generation server's output -> OpenAI's choices, chunks and replies. Pure.

Each choice of a request is one generation (:class:`~.mlx_translation.Plan`); a
:class:`ChoiceAssembler` reads that generation's lines (``{"text"}``, ``{"tool_call"}``, the
closing ``{"finish_reason", "completion_tokens"}``) and gives the stream deltas of its choice as
they come and the whole choice at the end. How tool calls are shaped follows vLLM's pool, so one
model name answers alike on both engines:

* ``auto``: the calls mlx-lm's parser read, each a whole call in one delta; finish
  ``tool_calls``;
* named ``tool_choice``: the generated text is the arguments; the first delta names the function,
  the next ones carry the arguments as they are generated; finish ``stop`` (as OpenAI);
* ``required``: the generated JSON array of ``{"name", "parameters"}`` is read at the end;
  finish ``tool_calls``. Output cut off by ``max_tokens`` is no call: it stays text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import EngineError
from .mlx_translation import Calls


@dataclass(frozen=True)
class Stamp:
    """What our replies say about themselves."""

    id: str
    created: int
    model: str
    """The canonical served name (the routes swap in the alias the client used)."""
    chat: bool
    """Chat completion (True) or legacy completion (False)."""

    @property
    def object(self) -> str:
        return "chat.completion" if self.chat else "text_completion"

    @property
    def chunk_object(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"


def tool_call_id() -> str:
    """A call's id, in vLLM's form."""
    return f"chatcmpl-tool-{uuid.uuid4().hex}"


@dataclass
class ChoiceAssembler:
    """One choice, built from its generation's lines."""

    index: int
    chat: bool
    calls: Calls = field(default_factory=Calls)
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0
    _named_id: str = ""

    def start(self) -> list[dict[str, Any]]:
        """The opening delta of a chat choice (the role, as OpenAI sends first)."""
        return [self._delta({"role": "assistant", "content": ""})] if self.chat else []

    def feed(self, line: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The stream deltas (choice objects) that one line of the generation gives.

        Raises:
            EngineError: the server reported a failure, or sent what it never sends.
        """
        if "error" in line:
            raise EngineError(f"The MLX server failed mid-generation: {line['error']}")
        if isinstance(line.get("text"), str):
            return self._text(line["text"])
        if isinstance(line.get("tool_call"), Mapping):
            return self._parsed_call(line["tool_call"])
        if isinstance(line.get("finish_reason"), str):
            self.completion_tokens = int(line.get("completion_tokens") or 0)
            return self._finish(line["finish_reason"])
        raise EngineError("The MLX server sent a line this replica cannot read.")

    def choice(self) -> dict[str, Any]:
        """The whole choice, for a reply that is not streamed."""
        out: dict[str, Any] = {"index": self.index}
        if self.chat:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if self.tool_calls and not self.content else self.content,
                "refusal": None,
            }
            if self.tool_calls:
                message["tool_calls"] = self.tool_calls
            out["message"] = message
        else:
            out["text"] = self.content
        out["logprobs"] = None
        out["finish_reason"] = self.finish_reason
        return out

    def _text(self, text: str) -> list[dict[str, Any]]:
        if self.calls.mode == "named":
            return [self._named_arguments(text)]
        self.content += text
        if self.calls.mode == "required":
            return []  # read whole at the end
        return [self._delta({"content": text} if self.chat else {}, text=text)]

    def _named_arguments(self, text: str) -> dict[str, Any]:
        function: dict[str, Any] = {"arguments": text}
        call: dict[str, Any] = {"index": 0, "function": function}
        if not self._named_id:
            self._named_id = tool_call_id()
            call.update(id=self._named_id, type="function")
            function["name"] = self.calls.function
            self.tool_calls.append(
                {"id": self._named_id, "type": "function", "function": dict(function)}
            )
        else:
            self.tool_calls[0]["function"]["arguments"] += text
        return self._delta({"tool_calls": [call]})

    def _parsed_call(self, call: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.calls.single and self.tool_calls:
            return []  # parallel_tool_calls: false keeps the first
        whole = {
            "id": tool_call_id(),
            "type": "function",
            "function": {"name": str(call.get("name")), "arguments": str(call.get("arguments"))},
        }
        self.tool_calls.append(whole)
        return [self._delta({"tool_calls": [{"index": len(self.tool_calls) - 1, **whole}]})]

    def _finish(self, reason: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.calls.mode == "required":
            calls = _required_calls(self.content) if reason == "stop" else None
            if calls is None:
                out.append(self._delta({"content": self.content}))
            else:
                self.content = ""
                for call in calls:
                    out.extend(self._parsed_call(call))
        if self.tool_calls and self.calls.mode in ("auto", "required") and reason == "stop":
            reason = "tool_calls"
        self.finish_reason = reason
        out.append(self._delta({} if self.chat else None, finish_reason=reason))
        return out

    def _delta(
        self,
        delta: dict[str, Any] | None,
        *,
        text: str = "",
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index}
        if self.chat:
            out["delta"] = delta or {}
        else:
            out["text"] = text
        out["logprobs"] = None
        out["finish_reason"] = finish_reason
        return out


def _required_calls(text: str) -> list[dict[str, str]] | None:
    """The calls of a ``required`` reply (the schema held it to ``[{"name", "parameters"}]``)."""
    try:
        items = json.loads(text)
    except ValueError:
        return None
    if not isinstance(items, list) or not items:
        return None
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        arguments = json.dumps(item.get("parameters", {}), ensure_ascii=False)
        calls.append({"name": item["name"], "arguments": arguments})
    return calls


def usage(prompt_tokens: int, choices: list[ChoiceAssembler]) -> dict[str, int]:
    """The request's usage: the prompt once, the completions of every choice."""
    completion = sum(choice.completion_tokens for choice in choices)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


def reply(stamp: Stamp, prompt_tokens: int, choices: list[ChoiceAssembler]) -> dict[str, Any]:
    """The whole reply of a request that did not stream."""
    return {
        "id": stamp.id,
        "object": stamp.object,
        "created": stamp.created,
        "model": stamp.model,
        "choices": [choice.choice() for choice in choices],
        "usage": usage(prompt_tokens, choices),
    }


def chunk(stamp: Stamp, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A stream chunk of ``choices`` (deltas from :class:`ChoiceAssembler`)."""
    return {
        "id": stamp.id,
        "object": stamp.chunk_object,
        "created": stamp.created,
        "model": stamp.model,
        "choices": choices,
        **extra,
    }
