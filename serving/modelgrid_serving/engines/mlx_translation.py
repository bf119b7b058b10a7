"""OpenAI requests -> requests of the MLX generation server. Pure functions.

The MLX generation server (:mod:`modelgrid_serving.mlx_generation_server`) takes the prompt's
token ids, sampling settings, a JSON schema to hold the output to, and whether to read tool calls;
it generates one sequence per request. Everything OpenAI-shaped is decided here, from our
*validated* models, field by field; every field MLX cannot honour is refused with a 400 that
names it, never dropped silently:

* the chat template is applied and the prompt encoded here, with the model's own tokenizer (so
  the context check counts exactly what is generated from);
* ``n`` choices are ``n`` generations (seeds ``seed``, ``seed + 1``, ...), merged by
  :mod:`.mlx_choices`;
* ``response_format`` becomes the schema (``json_object``: any object); a named
  ``tool_choice`` the function's parameters, ``required`` an array of calls of the listed
  functions (as vLLM does, whatever the model's own call format); the arguments are held to a
  function's schema only when it is ``strict``, as vLLM (and OpenAI) do;
* ``tool_choice`` ``auto`` lets the model call in its own format, read by mlx-lm's parser.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from ..errors import ContextLengthExceeded, InvalidRequest
from ..protocol import ChatCompletionRequest, CompletionRequest, SamplingRequest
from ..protocol.chat import NamedToolChoice, Tool

NO_EOS_BIAS = -1.0e9
"""Logit bias that keeps end-of-sequence tokens from being sampled: how ``ignore_eos`` is done."""

_OPENAI_DEFAULT_TEMPERATURE = 1.0
"""OpenAI samples at temperature 1 when none is given; MLX's samplers would be greedy (0)."""

MAX_CHOICES = 16
"""``n`` at most: each choice is a generation of its own (the gateway holds ``n`` to the same)."""

ANY_OBJECT: dict[str, Any] = {"type": "object"}

CallMode = Literal["none", "auto", "named", "required"]


class PromptEncoder(Protocol):
    """Encodes prompts as the model's own tokenizer and chat template do."""

    eos_token_ids: frozenset[int]

    def encode_chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> list[int]:
        """Token ids of the chat template applied to ``messages`` (with the generation prompt).

        Raises:
            InvalidRequest: the template refuses these messages.
        """
        ...

    def encode_text(self, prompt: str) -> list[int]:
        """Token ids of a completion prompt."""
        ...


@dataclass(frozen=True)
class Target:
    """What the translation needs to know about the model behind the MLX server."""

    max_model_len: int
    """Context length: prompt plus output, in tokens."""
    encoder: PromptEncoder


@dataclass(frozen=True)
class Calls:
    """How a chat reply's tool calls are made (see the module docstring)."""

    mode: CallMode = "none"
    function: str | None = None
    """The function a named ``tool_choice`` calls."""
    single: bool = False
    """``parallel_tool_calls: false``: at most one call."""


@dataclass(frozen=True)
class Plan:
    """The generations one OpenAI request becomes, and how their output is read."""

    body: dict[str, Any]
    """What each generation is sent (the seed apart)."""
    n: int
    prompt_tokens: int
    seed: int | None = None
    calls: Calls = field(default_factory=Calls)
    schema_param: str | None = None
    """The field a schema the server cannot use came from (its 400 names it)."""

    def body_for(self, index: int) -> dict[str, Any]:
        """Choice ``index``'s request: the seed moves on by one per choice, so seeded choices
        differ from each other and repeat across identical requests."""
        if self.seed is None:
            return self.body
        return {**self.body, "seed": (self.seed + index) % 2**64}


def unsupported(param: str, why: str) -> InvalidRequest:
    """The 400 for a parameter the MLX engine cannot honour."""
    return InvalidRequest(
        f"'{param}' is not supported by the MLX engine of this model: {why}.",
        param=param,
        code="unsupported_parameter",
    )


def to_mlx_chat(request: ChatCompletionRequest, target: Target) -> Plan:
    """The generations for an OpenAI chat completion request.

    Args:
        request: The request as the routes validated it (``model`` already the canonical name).
        target: The model behind the MLX server.

    Raises:
        InvalidRequest: a field is invalid or cannot be honoured by MLX (``param`` names it).
        ContextLengthExceeded: the prompt plus the output limit do not fit the context.
    """
    _refuse_extra_fields(request)
    if request.logprobs:
        raise unsupported("logprobs", "the MLX server does not report log probabilities")
    tools = [tool.model_dump(exclude_none=True) for tool in request.tools or ()]
    calls, schema, schema_param = _tool_plan(request)
    if calls.mode == "none":
        tools = []  # the model must not call tools: it does not see them
    response_schema = _response_schema(request)
    if response_schema is not None:
        if schema is not None:
            raise unsupported(
                "response_format", "it cannot be combined with a named or required tool_choice"
            )
        schema, schema_param = response_schema, "response_format.json_schema"
    messages = [
        _message(i, m.model_dump(exclude_none=True)) for i, m in enumerate(request.messages)
    ]
    prompt = target.encoder.encode_chat(messages, tools or None)
    plan = _plan(request, request.output_limit(), prompt, target, what="messages")
    extra: dict[str, Any] = {}
    if schema is not None:
        extra["json_schema"] = schema
    if calls.mode == "auto":
        extra["tools"] = tools  # read calls in the model's own format
    return replace(plan, body={**plan.body, **extra}, calls=calls, schema_param=schema_param)


def to_mlx_completion(request: CompletionRequest, target: Target) -> Plan:
    """The generations for an OpenAI (legacy) completion request.

    Raises:
        InvalidRequest: as :func:`to_mlx_chat`; also for a prompt that is not one string.
        ContextLengthExceeded: the prompt plus the output limit do not fit the context.
    """
    _refuse_extra_fields(request)
    if not isinstance(request.prompt, str):
        raise unsupported("prompt", "it takes one prompt string per request")
    if request.echo:
        raise unsupported("echo", "the MLX server does not echo the prompt")
    if request.logprobs is not None:
        raise unsupported("logprobs", "the MLX server reports no log probabilities")
    if request.best_of not in (None, 1):
        raise unsupported("best_of", "it does not rank candidates")
    if request.suffix:
        raise unsupported("suffix", "MLX has no fill-in-the-middle mode")
    prompt = target.encoder.encode_text(request.prompt)
    return _plan(request, request.max_tokens, prompt, target, what="prompt")


def _tool_plan(
    request: ChatCompletionRequest,
) -> tuple[Calls, dict[str, Any] | None, str | None]:
    """How calls are made, and the schema (with the field it came from) that holds them."""
    tools = request.tools or []
    choice = request.tool_choice
    single = request.parallel_tool_calls is False
    if not tools or choice == "none":
        return Calls(), None, None
    if isinstance(choice, NamedToolChoice):
        index = next(i for i, t in enumerate(tools) if t.function.name == choice.function.name)
        schema = _arguments_schema(tools[index])
        return (
            Calls("named", choice.function.name, single=True),
            schema,
            f"tools.{index}.function.parameters",
        )
    if choice == "required":
        items = [
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": [tool.function.name]},
                    "parameters": _arguments_schema(tool),
                },
                "required": ["name", "parameters"],
                "additionalProperties": False,
            }
            for tool in tools
        ]
        schema = {"type": "array", "minItems": 1, "items": {"anyOf": items}}
        if single:
            schema["maxItems"] = 1
        return Calls("required", single=single), schema, "tools"
    return Calls("auto", single=single), None, None


def _arguments_schema(tool: Tool) -> dict[str, Any]:
    """A function's parameters when it is ``strict``, else any JSON object (as vLLM)."""
    if tool.function.strict and tool.function.parameters:
        return tool.function.parameters
    return ANY_OBJECT


def _response_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    response_format = request.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return ANY_OBJECT
    schema = (response_format.json_schema or {}).get("schema")
    if schema is None:
        return ANY_OBJECT
    if not isinstance(schema, dict):
        raise InvalidRequest(
            "Invalid value for 'response_format.json_schema.schema': a JSON Schema object.",
            param="response_format.json_schema.schema",
        )
    return schema


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


def _plan(
    request: SamplingRequest,
    output_limit: int | None,
    prompt: list[int],
    target: Target,
    *,
    what: str,
) -> Plan:
    """What chat and completions share: choices, limits, sampling, penalties, stop."""
    n = request.n or 1
    if n > MAX_CHOICES:
        raise unsupported("n", f"it generates at most {MAX_CHOICES} choices per request")
    if request.min_tokens:
        raise unsupported("min_tokens", "MLX cannot hold back the end of sequence for a while")
    limit = target.max_model_len
    prompt_tokens = len(prompt)
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
    body: dict[str, Any] = {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": _OPENAI_DEFAULT_TEMPERATURE
        if request.temperature is None
        else request.temperature,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "top_k": max(request.top_k or 0, 0),  # -1 and 0 both mean "all tokens"
        "min_p": request.min_p or 0.0,
    }
    # Penalties: MLX applies them over a window of recent tokens; the window is the whole
    # context, so they count every earlier token as OpenAI's and vLLM's do.
    penalties = {
        name: getattr(request, name)
        for name in ("presence_penalty", "frequency_penalty", "repetition_penalty")
        if getattr(request, name) is not None
    }
    if penalties:
        body.update(penalties, context_size=limit)
    bias = _logit_bias(request.logit_bias)
    if request.ignore_eos:
        bias.update(dict.fromkeys(sorted(target.encoder.eos_token_ids), NO_EOS_BIAS))
    if bias:
        body["logit_bias"] = {str(token): value for token, value in bias.items()}
    stop = _stop_words(request.stop)
    if stop:
        body["stop"] = stop
    # MLX seeds with an unsigned 64-bit integer
    seed = None if request.seed is None else request.seed % 2**64
    return Plan(body=body, n=n, prompt_tokens=prompt_tokens, seed=seed)


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
