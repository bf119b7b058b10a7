"""OpenAI requests -> mlx-lm server requests, and its replies -> OpenAI's shapes. Pure functions.

mlx-lm's server (``mlx_lm.server``) reads a handful of body fields and ignores every other one;
fed a value of the wrong type (a list ``prompt``), its generation thread dies and the server
answers nothing more. So the request is rebuilt from our *validated* models, field by field,
and every field MLX cannot honour is refused with a 400 that names it, never dropped silently.

Its replies differ from OpenAI's in small ways that strict clients notice: ``: keepalive``
comment lines in streams, a usage chunk whose ``object`` is ``chat.completion``, the served
``created`` being the server's start time, ``model`` being the path it loaded, no ``logprobs``
/ ``refusal`` keys. :func:`normalise_response` and :func:`stream_event` fix those.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ContextLengthExceeded, InvalidRequest
from ..protocol import ChatCompletionRequest, CompletionRequest, SamplingRequest
from ..sse import DONE as DONE_DATA
from .events import DONE, StreamEvent, chunk_event, load_chunk

NO_EOS_BIAS = -1.0e9
"""Logit bias that keeps end-of-sequence tokens from being sampled: how ``ignore_eos`` is done."""

_OPENAI_DEFAULT_TEMPERATURE = 1.0
"""OpenAI samples at temperature 1 when none is given; mlx-lm's server would be greedy (0)."""


class PromptCounter(Protocol):
    """Counts prompt tokens as the MLX server will (the model's own tokenizer and template)."""

    eos_token_ids: frozenset[int]

    def count_chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> int:
        """Tokens of the chat template applied to ``messages`` (with the generation prompt)."""
        ...

    def count_text(self, prompt: str) -> int:
        """Tokens of a completion prompt."""
        ...


@dataclass(frozen=True)
class Target:
    """What the translation needs to know about the model behind the MLX server."""

    mlx_model: str
    """The model id or path the MLX server loaded (the ``model`` it is sent)."""
    max_model_len: int
    """Context length: prompt plus output, in tokens."""
    counter: PromptCounter


def unsupported(param: str, why: str) -> InvalidRequest:
    """The 400 for a parameter the MLX engine cannot honour."""
    return InvalidRequest(
        f"'{param}' is not supported by the MLX engine of this model: {why}.",
        param=param,
        code="unsupported_parameter",
    )


def to_mlx_chat(request: ChatCompletionRequest, target: Target) -> dict[str, Any]:
    """An mlx-lm server body for an OpenAI chat completion request.

    Args:
        request: The request as the routes validated it (``model`` already the canonical name).
        target: The model behind the MLX server.

    Returns:
        The JSON body to POST to the MLX server's ``/v1/chat/completions``.

    Raises:
        InvalidRequest: a field is invalid or cannot be honoured by MLX (``param`` names it).
        ContextLengthExceeded: the prompt plus the output limit do not fit the context.
    """
    _refuse_extra_fields(request)
    if request.logprobs:
        raise unsupported(
            "logprobs", "mlx-lm's server does not report the sampled token's log probability"
        )
    if request.response_format is not None and request.response_format.type != "text":
        raise unsupported("response_format", "MLX has no JSON mode or structured output")
    tools = [tool.model_dump(exclude_none=True) for tool in request.tools or ()]
    choice = request.tool_choice
    if choice == "none":
        tools = []  # the model must not call tools: it does not see them
    elif choice not in (None, "auto"):
        raise unsupported("tool_choice", "only 'auto' and 'none' can be honoured")
    if request.parallel_tool_calls is False:
        raise unsupported("parallel_tool_calls", "MLX cannot limit a reply to one tool call")
    messages = [
        _message(i, m.model_dump(exclude_none=True)) for i, m in enumerate(request.messages)
    ]
    prompt_tokens = target.counter.count_chat(messages, tools or None)
    out = {
        "model": target.mlx_model,
        "messages": messages,
        **_sampling(request, request.output_limit(), prompt_tokens, target, what="messages"),
    }
    if tools:
        out["tools"] = tools
    return out


def to_mlx_completion(request: CompletionRequest, target: Target) -> dict[str, Any]:
    """An mlx-lm server body for an OpenAI (legacy) completion request.

    Raises:
        InvalidRequest: as :func:`to_mlx_chat`; also for a prompt that is not one string.
        ContextLengthExceeded: the prompt plus the output limit do not fit the context.
    """
    _refuse_extra_fields(request)
    if not isinstance(request.prompt, str):
        raise unsupported("prompt", "it takes one prompt string per request")
    if request.echo:
        raise unsupported("echo", "mlx-lm's server does not echo the prompt")
    if request.logprobs is not None:
        raise unsupported("logprobs", "mlx-lm's server reports no log probabilities here")
    if request.best_of not in (None, 1):
        raise unsupported("best_of", "it generates one candidate per request")
    if request.suffix:
        raise unsupported("suffix", "MLX has no fill-in-the-middle mode")
    prompt_tokens = target.counter.count_text(request.prompt)
    return {
        "model": target.mlx_model,
        "prompt": request.prompt,
        **_sampling(request, request.max_tokens, prompt_tokens, target, what="prompt"),
    }


def _refuse_extra_fields(request: SamplingRequest) -> None:
    """Fields our protocol does not declare reach vLLM, which knows many; MLX knows none."""
    for name, value in (request.model_extra or {}).items():
        if value is not None:
            raise unsupported(name, "the MLX engine takes only the parameters listed in the docs")


def _message(index: int, message: dict[str, Any]) -> dict[str, Any]:
    """One message with its content as text (MLX's server takes text parts only)."""
    content = message.get("content")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequest(
                    f"Content part of type {part.get('type')!r} is not supported by the MLX "
                    "engine of this model: it takes text parts only.",
                    param=f"messages.{index}.content.{j}.type",
                    code="unsupported_parameter",
                )
            texts.append(part["text"])
        message["content"] = "".join(texts)
    return message


def _sampling(
    request: SamplingRequest,
    output_limit: int | None,
    prompt_tokens: int,
    target: Target,
    *,
    what: str,
) -> dict[str, Any]:
    """The fields chat and completions share: limits, sampling, penalties, stop, stream."""
    if request.n not in (None, 1):
        raise unsupported("n", "it generates one choice per request")
    if request.min_tokens:
        raise unsupported("min_tokens", "MLX cannot hold back the end of sequence for a while")
    limit = target.max_model_len
    out: dict[str, Any] = {
        "max_tokens": _max_tokens(request, output_limit, prompt_tokens, limit, what=what),
        "temperature": _OPENAI_DEFAULT_TEMPERATURE
        if request.temperature is None
        else request.temperature,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "top_k": max(request.top_k or 0, 0),  # -1 and 0 both mean "all tokens"
        "min_p": request.min_p or 0.0,
        "stream": bool(request.stream),
        **_penalties(request, limit),
    }
    bias = _logit_bias(request.logit_bias)
    if request.ignore_eos:
        bias.update(dict.fromkeys(sorted(target.counter.eos_token_ids), NO_EOS_BIAS))
    if bias:
        out["logit_bias"] = {str(token): value for token, value in bias.items()}
    if request.seed is not None:
        out["seed"] = request.seed % 2**64  # MLX seeds with an unsigned 64-bit integer
    stop = _stop_words(request.stop)
    if stop:
        out["stop"] = stop
    if request.stream:
        out["stream_options"] = {"include_usage": True}
    return out


def _max_tokens(
    request: SamplingRequest, output_limit: int | None, prompt_tokens: int, limit: int, *, what: str
) -> int:
    """The tokens the answer may take: what the request asks, else the rest of the context.

    A prompt that fills the context, or a prompt and answer that exceed it, is refused with
    the messages vLLM gives, so that a client sees one behaviour whichever engine serves.

    Raises:
        ContextLengthExceeded: naming the prompt (``what``) or the field that asked too much.
    """
    if prompt_tokens >= limit:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {limit} tokens. However, your {what} "
            f"resulted in {prompt_tokens} tokens.",
            param=what,
        )
    max_tokens = output_limit if output_limit is not None else limit - prompt_tokens
    if prompt_tokens + max_tokens > limit:
        named = getattr(request, "max_completion_tokens", None)
        param = "max_completion_tokens" if named else "max_tokens"
        raise ContextLengthExceeded(
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the {what}, {max_tokens} "
            "in the completion). Please reduce the length of the prompt or completion.",
            param=param,
        )
    return max_tokens


def _penalties(request: SamplingRequest, limit: int) -> dict[str, Any]:
    """The penalties the request sets, each with its window. MLX applies them over a window of
    recent tokens; the window is the whole context, so they count every earlier token as
    OpenAI's and vLLM's do."""
    out: dict[str, Any] = {}
    for name in ("presence_penalty", "frequency_penalty", "repetition_penalty"):
        value = getattr(request, name)
        if value is not None:
            out[name] = value
            out[name.replace("penalty", "context_size")] = limit
    return out


def _logit_bias(bias: Mapping[str, float] | None) -> dict[int, float]:
    out: dict[int, float] = {}
    for key, value in (bias or {}).items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidRequest(
                f"Invalid value for 'logit_bias': keys are token ids, got {key!r}.",
                param="logit_bias",
            ) from None
        out[token] = value
    return out


def _stop_words(stop: str | Sequence[str] | None) -> list[str]:
    words = [stop] if isinstance(stop, str) else list(stop or ())
    return [word for word in words if word]  # an empty stop string would match everywhere


# --- replies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """What our replies say about themselves, whatever the MLX server said."""

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


def normalise_response(body: Mapping[str, Any], stamp: Stamp) -> dict[str, Any]:
    """A full (non-streamed) MLX reply in OpenAI's shape."""
    choices = []
    for choice in body.get("choices") or ():
        out: dict[str, Any] = {
            "index": choice.get("index", 0),
            "finish_reason": choice.get("finish_reason"),
            "logprobs": None,
        }
        if stamp.chat:
            message = dict(choice.get("message") or {})
            message.setdefault("role", "assistant")
            message.setdefault("content", None)
            message.setdefault("refusal", None)
            if not message.get("tool_calls"):
                message.pop("tool_calls", None)
            out["message"] = message
        else:
            out["text"] = choice.get("text", "")
        choices.append(out)
    return {
        "id": stamp.id,
        "object": stamp.object,
        "created": stamp.created,
        "model": stamp.model,
        "choices": choices,
        "usage": _usage(body.get("usage")),
    }


def stream_event(data: str, stamp: Stamp) -> StreamEvent:
    """One event of the MLX server's stream (its data) as ours.

    ``[DONE]`` ends the stream; every chunk gets our id, created, model and ``object`` (the
    usage chunk included) and is written as compact JSON, which the routes' alias rewrite
    relies on; an error body stays the error it reports.

    Raises:
        EngineError: the data is not a JSON object.
    """
    if data == DONE_DATA:
        return DONE
    chunk = load_chunk(data, source="The MLX server")
    if "error" in chunk:
        return chunk_event(chunk, data)
    out: dict[str, Any] = {
        "id": stamp.id,
        "object": stamp.chunk_object,
        "created": stamp.created,
        "model": stamp.model,
        "choices": [_chunk_choice(c, stamp.chat) for c in chunk.get("choices") or ()],
    }
    if chunk.get("usage") is not None:
        out["usage"] = _usage(chunk["usage"])
    return chunk_event(out, json.dumps(out, separators=(",", ":"), ensure_ascii=False))


def _chunk_choice(choice: Mapping[str, Any], chat: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"index": choice.get("index", 0)}
    if chat:
        delta = dict(choice.get("delta") or {})
        if not delta.get("tool_calls"):
            delta.pop("tool_calls", None)
        out["delta"] = delta
    else:
        out["text"] = choice.get("text", "")
    out["logprobs"] = None
    out["finish_reason"] = choice.get("finish_reason")
    return out


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, Mapping):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    details = usage.get("prompt_tokens_details")
    if isinstance(details, Mapping) and details.get("cached_tokens") is not None:
        out["prompt_tokens_details"] = {"cached_tokens": int(details["cached_tokens"])}
    return out
