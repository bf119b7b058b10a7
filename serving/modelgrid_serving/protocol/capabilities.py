"""What each engine can serve, declared once: the capabilities, the request fields that need
each one, and what vLLM and MLX declare.

One model name may be served by pools of different engines (vLLM on NVIDIA, MLX on Apple). A
client must never see that: the gateway sends a request only to pools whose engine can serve
every part of it (:func:`requirements` over the parsed body, :func:`engine_capabilities` per
pool), and when none can it answers 400 ``unsupported_parameter`` naming the field. What an
engine lacks is therefore declared here, by the engine's entry in :data:`ENGINE_CAPABILITIES`,
not discovered by a client's refused request. An engine that learns something (as MLX gained
``n > 1``, tool choice and structured output) moves it into its entry here; a unit test holds the MLX engine's refusals to
this declaration.

Detection runs on the gateway's hot path: it reads only the few top-level fields that name a
capability, and only for the capabilities some pool of the model lacks (``among``), so a model
whose pools can all do everything pays one empty-set test a request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any


class Capability(StrEnum):
    """Something a request may need that not every engine can do."""

    TOOLS = "tools"
    """``tools`` offered with ``tool_choice`` ``auto`` (or unset): replies become ``tool_calls``."""
    TOOL_CHOICE = "tool_choice"
    """Tool calls held to the request: a named function or ``required`` as ``tool_choice``, or
    ``parallel_tool_calls: false``."""
    STRUCTURED_OUTPUT = "structured_output"
    """``response_format`` ``json_object`` (JSON mode) or ``json_schema`` (structured output)."""
    LOGPROBS = "logprobs"
    """Token log probabilities (``logprobs``, ``top_logprobs``)."""
    N = "n"
    """Several choices in one request (``n > 1``)."""
    BEST_OF = "best_of"
    """Completions ``best_of > 1``: candidates ranked by their log probability."""
    REASONING = "reasoning"
    """The model's thinking apart, as ``reasoning_content``; asked for with ``reasoning_effort``."""
    EMBEDDINGS = "embeddings"
    """``POST /v1/embeddings`` (an embedding model behind an engine that serves them)."""
    PROMPT_ARRAYS = "prompt_arrays"
    """A completions ``prompt`` given as a list: several prompts, or token ids."""
    ECHO = "echo"
    """Completions ``echo``: the prompt repeated before the answer."""
    MIN_TOKENS = "min_tokens"
    """``min_tokens`` (an extension): the end of sequence held back for a while."""


ALL_CAPABILITIES = frozenset(Capability)
"""What a backend can do when nothing says otherwise (a static backend declaring nothing)."""

ENGINE_CAPABILITIES: Mapping[str, frozenset[Capability]] = {
    "vllm": frozenset(
        {
            Capability.STRUCTURED_OUTPUT,
            Capability.LOGPROBS,
            Capability.N,
            Capability.BEST_OF,
            Capability.EMBEDDINGS,
            Capability.PROMPT_ARRAYS,
            Capability.ECHO,
            Capability.MIN_TOKENS,
        }
    ),
    "mlx": frozenset(
        {Capability.TOOLS, Capability.TOOL_CHOICE, Capability.STRUCTURED_OUTPUT, Capability.N}
    ),
}
"""What each engine (``config.Engine``'s value) serves whatever the model's spec says. vLLM
serves embeddings for embedding models only; for another it answers 400 itself, as it would
alone. MLX (its generation server, docs/serving.md) reads calls in the model's own format with
mlx-lm's parser, where the model has one, and holds a named or ``required`` ``tool_choice`` and
``response_format`` to a JSON schema (llguidance) whatever the format; ``n`` is ``n``
generations. It has no log probabilities, so no ``best_of`` either."""

WITH_TOOL_CALL_PARSER: Mapping[str, frozenset[Capability]] = {
    "vllm": frozenset({Capability.TOOLS, Capability.TOOL_CHOICE}),
    "mlx": frozenset(),
}
"""What an engine adds when the spec configures a tool-call parser (``spec.toolCalling``):
vLLM refuses every ``tool_choice`` but ``none`` without one."""

WITH_REASONING_PARSER: Mapping[str, frozenset[Capability]] = {
    "vllm": frozenset({Capability.REASONING}),
    "mlx": frozenset(),
}
"""What an engine adds when the spec configures a reasoning parser (``spec.reasoning``)."""


def engine_capabilities(
    engine: str, *, tool_call_parser: str | None = None, reasoning_parser: str | None = None
) -> frozenset[Capability]:
    """What a pool of ``engine`` serves, given the model's parsers.

    Args:
        engine: ``vllm`` or ``mlx`` (the engine the pool runs; ``auto`` is resolved before).
        tool_call_parser: The spec's tool-call parser (``auto`` counts: the replica picks one).
        reasoning_parser: The spec's reasoning parser.

    Raises:
        ValueError: an engine this declaration does not know.
    """
    if engine not in ENGINE_CAPABILITIES:
        raise ValueError(f"no capabilities are declared for the engine {engine!r}")
    out = ENGINE_CAPABILITIES[engine]
    if tool_call_parser:
        out |= WITH_TOOL_CALL_PARSER[engine]
    if reasoning_parser:
        out |= WITH_REASONING_PARSER[engine]
    return out


def parse_capabilities(names: Iterable[str]) -> frozenset[Capability]:
    """Capabilities by name, as a config file or a model card lists them.

    Raises:
        ValueError: a name that is not a :class:`Capability`, naming the ones that are.
    """
    try:
        return frozenset(Capability(n) for n in names)
    except ValueError:
        unknown = sorted(set(names) - {c.value for c in Capability})
        known = ", ".join(c.value for c in Capability)
        raise ValueError(f"unknown capabilities {unknown}; known: {known}") from None


def requirements(
    route: str, payload: Mapping[str, Any], among: frozenset[Capability] = ALL_CAPABILITIES
) -> dict[Capability, str]:
    """What serving this request needs, each capability with the field that needs it.

    Args:
        route: ``chat``, ``completions`` or ``embeddings``.
        payload: The parsed request body (any values: the replica validates their types).
        among: Look only for these (the capabilities some candidate pool lacks).

    Returns:
        Capability -> the request field that needs it (the first one found), in the order of
        :class:`Capability`. Empty when the request needs nothing of ``among``.
    """
    if not among:
        return {}
    if route == "embeddings":
        return {Capability.EMBEDDINGS: "model"} if Capability.EMBEDDINGS in among else {}
    get = payload.get
    found: dict[Capability, str] = {}
    if Capability.TOOLS in among or Capability.TOOL_CHOICE in among:
        _tools(get("tools"), get("tool_choice"), get("parallel_tool_calls"), among, found)
    if Capability.STRUCTURED_OUTPUT in among:
        response_format = get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        ):
            found[Capability.STRUCTURED_OUTPUT] = "response_format"
    if Capability.LOGPROBS in among:
        logprobs = get("logprobs")  # chat: a boolean; completions: a count (0 counts)
        if logprobs is not None and logprobs is not False:
            found[Capability.LOGPROBS] = "logprobs"
        elif get("top_logprobs"):
            found[Capability.LOGPROBS] = "top_logprobs"
    for capability, field in ((Capability.N, "n"), (Capability.BEST_OF, "best_of")):
        value = get(field)
        if capability in among and type(value) is int and value > 1:
            found[capability] = field
    if Capability.REASONING in among and get("reasoning_effort") is not None:
        found[Capability.REASONING] = "reasoning_effort"
    if route == "completions":
        if Capability.PROMPT_ARRAYS in among and isinstance(get("prompt"), list):
            found[Capability.PROMPT_ARRAYS] = "prompt"
        if Capability.ECHO in among and get("echo"):
            found[Capability.ECHO] = "echo"
    if Capability.MIN_TOKENS in among and get("min_tokens"):
        found[Capability.MIN_TOKENS] = "min_tokens"
    return found


def _tools(
    tools: object,
    choice: object,
    parallel: object,
    among: frozenset[Capability],
    found: dict[Capability, str],
) -> None:
    """Tools are needed when offered and not switched off (``tool_choice: none``); tool choice
    when a function is named or a call is required, or calls are limited to one."""
    if not tools or choice == "none":
        return
    if Capability.TOOLS in among:
        found[Capability.TOOLS] = "tools"
    if Capability.TOOL_CHOICE in among:
        if choice == "required" or isinstance(choice, dict):
            found[Capability.TOOL_CHOICE] = "tool_choice"
        elif parallel is False:
            found[Capability.TOOL_CHOICE] = "parallel_tool_calls"
