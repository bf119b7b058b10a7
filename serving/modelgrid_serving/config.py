"""The contract between the operator and the Serve application.

The operator renders an InferenceModel into a RayService whose ``serveConfigV2`` deploys
``modelgrid_serving.app:build_app`` once per pool, each with an :class:`AppConfig` as its
``args``; ``modelgrid up`` builds a :class:`LocalRun` from the same YAML and deploys one
AppConfig per pool the same way. Keeping it here (pydantic only, no Ray, no engine) lets both
sides validate it without importing anything heavy, and it is the one place that says what an
engine and an accelerator are and how a pool's application is named and routed: the operator's
typed API imports these rather than declaring its own (``.importlinter`` lets the operator import
this module, never serving's internals).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

IMPORT_PATH = "modelgrid_serving.app:build_app"
"""What the rendered Serve config imports to build the application."""


class Engine(StrEnum):
    """Which inference engine serves the model."""

    AUTO = "auto"
    """vLLM on NVIDIA and CPU pools, MLX on Apple pools."""
    VLLM = "vllm"
    MLX = "mlx"


RunningEngine = Literal[Engine.VLLM, Engine.MLX]
"""The engine a pool's replicas actually run: ``auto`` is resolved before a pool is deployed."""


class Accelerator(StrEnum):
    """The kind of node a pool runs on."""

    NVIDIA = "nvidia"
    APPLE = "apple"
    CPU = "cpu"


TOOL_CALL_PARSERS = (
    "apertus", "cohere_command3", "cohere_command4", "deepseek_v3", "deepseek_v31",
    "deepseek_v32", "deepseek_v4", "deepseek_v41", "dots", "ernie45", "functiongemma", "gemma4",
    "gigachat3", "glm45", "glm47", "granite", "granite-20b-fc", "granite4", "hermes", "hf",
    "hunyuan_a13b", "hy_v3", "hy_v4", "inkling", "internlm", "jamba", "k2_horizon", "kimi_k2",
    "kimi_k3", "lfm2", "ling3", "llama3_json", "llama4_json", "llama4_pythonic", "longcat",
    "mimo", "minicpm5", "minimax_m2", "minimax_m3", "mistral", "muse_glimmer", "olmo3", "openai",
    "phi4_mini_json", "plamo3", "poolside_v1", "pythonic", "qwen3_coder", "qwen3_json",
    "qwen3_xml", "seed_oss", "step3", "step3p5", "xlam",
)  # fmt: skip
"""vLLM's tool-call parsers (``--tool-call-parser``) in the version modelgrid pins: a spec naming
another is refused before any replica starts (a unit test compares with vLLM's registry)."""
REASONING_PARSERS = (
    "cohere_command3", "cohere_command4", "deepseek_r1", "deepseek_v3", "deepseek_v4",
    "deepseek_v41", "ernie45", "gemma4", "glm45", "glm47", "granite", "granite_thinking_parser",
    "hf", "holo2", "hunyuan_a13b", "hy_v3", "hy_v4", "inkling", "k2_horizon", "kimi_k2",
    "kimi_k3", "ling3", "mimo", "minicpmv", "minimax_m2", "minimax_m2_append_think",
    "minimax_m3", "mistral", "muse_glimmer", "nemotron_v3", "olmo3", "openai_gptoss", "plamo3",
    "poolside_v1", "qwen3", "seed_oss", "step3", "step3p5",
)  # fmt: skip
"""vLLM's reasoning parsers (``--reasoning-parser``), likewise checked against its registry."""
AUTO_PARSER = "auto"
"""``tool_call_parser: auto``: the replica picks the parser from the model's files."""
ToolCallParserName = Literal[(AUTO_PARSER, *TOOL_CALL_PARSERS)]  # type: ignore[valid-type]
"""What a spec may say for tool calling: ``auto`` or one of :data:`TOOL_CALL_PARSERS`."""
ReasoningParserName = Literal[REASONING_PARSERS]  # type: ignore[valid-type]
"""One of :data:`REASONING_PARSERS`."""


Port = Annotated[int, Field(ge=1, le=65535)]
"""A TCP port number, bounded once: the replicas' metrics port here and in the operator's
settings."""


class _Frozen(BaseModel):
    """A contract model: fields are described by the docstring under each (as this module's
    constants are), so each declaration reads as its name, type and default."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class PoolConfig(_Frozen):
    """One pool's Serve deployment: where its replicas run and how many."""

    name: str
    accelerator: Accelerator
    engine: RunningEngine
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=1)
    ray_resource: str | None = None
    """Custom Ray resource that each worker of this pool advertises once; a replica asks for one
    unit, so replicas land only on their pool's workers, one per worker. None in local mode,
    where there is a single node."""
    gpus_per_replica: int = Field(default=0, ge=0)
    mlx_server_url: str | None = None
    """Base URL of the MLX server sidecar on the same node (Apple pools)."""


class ModelConfig(_Frozen):
    """How a model is served, whichever pool serves it: what :class:`AppConfig` (one pool, in a
    cluster or locally) and :class:`LocalRun` (every pool ``modelgrid up`` runs) share."""

    model_name: str
    """The served model name (the `model` field of requests)."""
    aliases: tuple[str, ...] = ()
    model_source: str
    """What the engine loads: a local path, a Hugging Face id or an s3:// / gs:// URI."""
    revision: str | None = None
    max_model_len: int | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)
    tool_call_parser: ToolCallParserName | None = None
    """Tool calling: `auto` (the replica detects the parser from the model's files), a vLLM
    tool-call parser, or None (off: vLLM refuses a tool_choice but `none`)."""
    reasoning_parser: ReasoningParserName | None = None
    """A vLLM reasoning parser: answers carry `reasoning_content`."""
    chat_template: str | None = None
    """A chat template that replaces the model's own: Jinja text, or the path of a file in the
    replica (a mounted ConfigMap)."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    """Largest request body a replica reads (413 above it): the gateway's default bound, held by
    the replica too, so nothing that reaches it directly gets more."""
    max_ongoing_requests: int = Field(default=64, ge=1)
    max_queued_requests: int = Field(default=256, ge=-1)
    target_ongoing_requests: int | None = None
    metrics_port: Port | None = None
    """Port on which each replica also serves its Prometheus metrics (besides GET /metrics
    through Serve). None: only GET /metrics."""

    @property
    def served_names(self) -> tuple[str, ...]:
        """The name and every alias, in the order a listing shows them."""
        return (self.model_name, *self.aliases)


class AppConfig(ModelConfig):
    """Everything one Serve application needs: the model, and the one pool it serves.

    A model with several pools is several applications, so a pool that fails to deploy leaves
    the others serving, and the gateway can weigh pools apart.
    """

    pool: PoolConfig


class LocalRun(ModelConfig):
    """What ``modelgrid up`` serves on this machine: the model and each pool it runs.

    Each pool still becomes its own application (:meth:`applications`), named and routed as in a
    cluster (:func:`application_name`, :func:`route_prefix`).
    """

    pools: tuple[PoolConfig, ...] = Field(min_length=1)

    def applications(self) -> tuple[AppConfig, ...]:
        """One AppConfig per pool, in the order of the pools."""
        common = self.model_dump(exclude={"pools"})
        return tuple(AppConfig(**common, pool=pool) for pool in self.pools)


def application_name(model_name: str, pool: str, n_pools: int) -> str:
    """The Serve application of a pool: the model's name alone, or ``<model>-<pool>`` when the
    model has several pools."""
    return model_name if n_pools == 1 else f"{model_name}-{pool}"


def route_prefix(pool: str, n_pools: int) -> str:
    """Where a pool's application answers: ``/``, or ``/pools/<pool>`` when the model has
    several pools (OpenAI routes then at ``/pools/<pool>/v1/...``)."""
    return "/" if n_pools == 1 else f"/pools/{pool}"
