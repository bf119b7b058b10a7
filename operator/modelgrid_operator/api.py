"""The InferenceModel API (group ``modelgrid.io``, version ``v1alpha1``), typed.

This module is the single source of truth for the custom resource: the CRD's OpenAPI schema
(:mod:`modelgrid_operator.crd`), the field documentation that ``kubectl explain`` shows, the CEL
rules the API server enforces and the validation messages of ``modelgrid render`` all come from
the models below. Field names are snake_case in Python and camelCase on the wire.

Cross-field rules are declared once as :class:`Rule`: a CEL expression for the API server and a
Python predicate for everything that runs without one (the CLI, the operator's own check, tests).
Both carry the same message, so a user sees the same words wherever the rule fires.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

# Declared once, in the contract with the Serve application: what the CRD accepts is what the
# replicas run. Re-exported here as part of the typed API.
from modelgrid_serving.config import (
    AUTO_PARSER,
    Accelerator,
    Engine,
    ReasoningParserName,
    RunningEngine,
    ToolCallParserName,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

GROUP = "modelgrid.io"
VERSION = "v1alpha1"
KIND = "InferenceModel"
PLURAL = "inferencemodels"
SINGULAR = "inferencemodel"
SHORT_NAMES = ("im",)
CATEGORIES = ("modelgrid", "ai")
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
"""A DNS label that starts with a letter: what a Service name (and so a RayService's) must be."""
MAX_NAME_LENGTH = 40
"""Longest InferenceModel name. It begins each pool's RayService name (``<name>-<pool>-<hash>``,
which KubeRay caps at 47 characters, ``MaxRayServiceNameLength``: its RayCluster adds a
6-character suffix), and names the NetworkPolicy and the ``modelgrid.io/model`` label value."""
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
"""What a served model name may look like: what OpenAI clients send in ``model``."""

Count = Annotated[int, Field(ge=1, le=100_000)]
"""A count in the spec (requests, sequences, layers, heads): at least one, at most 100,000. One
bound for every such field, declared once."""

BUILTIN_MODELS = ("tiny-llama",)
"""Models modelgrid generates itself (random weights, a locally trained tokenizer): for demos and
tests on machines that reach no model hub. ``builtin://tiny-llama`` is a few MB."""

MODEL_URI = (
    r"^((hf|s3|gs|pvc)://\S+|builtin://(" + "|".join(BUILTIN_MODELS) + r")|file:///\S*|/\S*"
    r"|[A-Za-z0-9][\w.-]*/[\w.-]+)$"
)
"""A Hugging Face id (``org/name`` or ``hf://org/name``), ``s3://``, ``gs://``,
``pvc://claim/path``, a path on the node (``file:///path`` or ``/path``) or a built-in model."""


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, said once for the API server (CEL) and for Python.

    Attributes:
        cel: the ``x-kubernetes-validations`` rule, evaluated with ``self`` = the object.
        message: what the user reads when the rule fails.
        check: the same rule in Python; returns True when the object is valid.
        field: the field the message is about, relative to the object (for error paths).
    """

    cel: str
    message: str
    check: Callable[[Any], bool]
    field: str | None = None


class _Object(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self) -> _Object:
        for rule in self.rules:
            if not rule.check(self):
                raise ValueError(rule.message)
        return self


def _is_resource_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and len(name) <= MAX_NAME_LENGTH
        and re.match(DNS_1035_LABEL, name) is not None
    )


RESOURCE_NAME = Rule(
    cel=f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && "
    f"self.metadata.name.matches('{DNS_1035_LABEL}')",
    message=f"metadata.name must be a DNS-1035 label of at most {MAX_NAME_LENGTH} characters "
    "(lowercase letters, digits and '-', starting with a letter): it begins the name of each "
    "pool's RayService, which KubeRay refuses otherwise, and of its Services",
    check=lambda model: _is_resource_name(model.metadata.get("name")),
)
"""The resource's own name, which begins each pool's RayService name: KubeRay's
``ValidateRayServiceMetadata`` (utils/validation.go, v1.6 and v1.7) wants that a DNS-1035 label
of at most 47 characters (``render.rayservice.rayservice_name`` keeps it within). A name it
refuses is never reconciled, so ``8b-chat`` must be refused here, where the user sees why."""


class SourceKind(StrEnum):
    """Where model weights come from, read off the URI."""

    HUGGING_FACE = "huggingface"
    S3 = "s3"
    GCS = "gcs"
    PVC = "pvc"
    PATH = "path"
    BUILTIN = "builtin"


class ModelSource(_Object):
    """Where the weights and tokenizer live."""

    uri: str = Field(
        pattern=MODEL_URI,
        max_length=1024,
        description="A Hugging Face id (`org/name` or `hf://org/name`), an object store URI "
        "(`s3://bucket/prefix`, `gs://bucket/prefix`), a PersistentVolumeClaim "
        "(`pvc://claim-name/path/in/volume`) or a path on the node (`/models/x` or "
        "`file:///models/x`), or `builtin://tiny-llama`, a tiny random-weight model that modelgrid "
        "generates itself for demos and tests.",
    )
    revision: str | None = Field(
        default=None,
        max_length=256,
        description="Hugging Face revision (branch, tag or commit). Only for Hugging Face ids.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.revision) || !(self.uri.startsWith('s3://') || self.uri.startsWith('gs://') "
            "|| self.uri.startsWith('pvc://') || self.uri.startsWith('/') || self.uri.startsWith('file://') "
            "|| self.uri.startsWith('builtin://'))",
            message="revision applies only to Hugging Face model ids",
            check=lambda s: s.revision is None or s.kind is SourceKind.HUGGING_FACE,
            field="revision",
        ),
        Rule(
            cel="!self.uri.startsWith('pvc://') || self.uri.matches('^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?$')",
            message="pvc:// URIs name a PersistentVolumeClaim: pvc://<claim-name>/<path in volume>",
            check=lambda s: (
                not s.uri.startswith("pvc://")
                or re.match(r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?$", s.uri) is not None
            ),
            field="uri",
        ),
    )

    @property
    def kind(self) -> SourceKind:
        """Which kind of source the URI names."""
        for prefix, kind in (
            ("hf://", SourceKind.HUGGING_FACE),
            ("s3://", SourceKind.S3),
            ("gs://", SourceKind.GCS),
            ("pvc://", SourceKind.PVC),
            ("builtin://", SourceKind.BUILTIN),
            ("file://", SourceKind.PATH),
            ("/", SourceKind.PATH),
        ):
            if self.uri.startswith(prefix):
                return kind
        return SourceKind.HUGGING_FACE

    @property
    def location(self) -> str:
        """The URI without its scheme where the engine wants it so: an HF id or a path."""
        if self.uri.startswith("hf://"):
            return self.uri.removeprefix("hf://")
        if self.uri.startswith("file://"):
            return self.uri.removeprefix("file://")
        if self.uri.startswith("builtin://"):
            return self.uri.removeprefix("builtin://")
        return self.uri

    @property
    def pvc(self) -> tuple[str, str]:
        """For a PVC source: the claim name and the path inside the volume."""
        claim, _, path = self.uri.removeprefix("pvc://").partition("/")
        return claim, path


class EngineArgs(_Object):
    """How the engine runs the model. Fields an engine cannot use are rejected, not ignored."""

    max_model_len: int | None = Field(
        default=None,
        ge=16,
        le=10_485_760,
        description="Context length in tokens (prompt + output). Default: the model's own.",
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        default="auto", description="Weight and activation dtype."
    )
    tensor_parallel_size: int = Field(
        default=1, ge=1, le=64, description="GPUs each replica shards the model across (vLLM)."
    )
    pipeline_parallel_size: int = Field(
        default=1, ge=1, le=64, description="Pipeline stages per replica (vLLM)."
    )
    gpu_memory_utilization: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="Fraction of each GPU's memory the engine may take (vLLM).",
    )
    extra_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed through to the engine as keyword arguments, e.g. "
        "`enable_prefix_caching: true` for vLLM. Unknown keys fail at engine start.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one vLLM replica needs: tensor x pipeline parallel size."""
        return self.tensor_parallel_size * self.pipeline_parallel_size


class Toleration(_Object):
    """A Kubernetes toleration, as in a Pod spec."""

    key: str | None = Field(default=None, description="Taint key; empty with Exists matches all.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal."
    )
    value: str | None = Field(default=None, description="Taint value to match with Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a NoExecute taint is tolerated."
    )


Quantity = int | str
"""A Kubernetes resource quantity (``2``, ``500m``, ``8Gi``)."""


def _no_gpus_in(field: Literal["requests", "limits"]) -> Rule:
    """The rule that ``resources.<field>`` names no GPUs: a pool's GPUs follow from its engine
    arguments (one count, rendered into requests and limits alike), so a second count here
    could only contradict it."""
    return Rule(
        cel=f"!has(self.{field}) || !('nvidia.com/gpu' in self.{field})",
        message="GPUs are derived from engineArgs (tensorParallelSize x pipelineParallelSize); "
        "do not set nvidia.com/gpu in resources",
        check=lambda r: "nvidia.com/gpu" not in getattr(r, field),
        field=field,
    )


class Resources(_Object):
    """CPU and memory of one replica's worker pod. GPUs are derived, not set here."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Resource requests, e.g. `cpu: 4`, `memory: 16Gi`."
    )
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Resource limits.")

    rules: ClassVar[tuple[Rule, ...]] = (_no_gpus_in("requests"), _no_gpus_in("limits"))


class Pool(_Object):
    """A group of identical replicas on one kind of node."""

    name: str = Field(
        pattern=DNS_LABEL,
        max_length=40,
        description="Pool name, unique in the model; names the RayService worker group.",
    )
    accelerator: Accelerator = Field(description="Node kind: `nvidia`, `apple` or `cpu`.")
    min_replicas: int = Field(
        default=1, ge=0, le=1000, description="Replicas kept even when idle (0 scales to zero)."
    )
    max_replicas: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Upper bound for autoscaling. Default: minReplicas (no autoscaling).",
    )
    resources: Resources = Field(
        default_factory=Resources, description="CPU and memory of each replica's worker pod."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Extra node labels the pool's pods require, merged over the accelerator's.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Extra tolerations, added to the accelerator's defaults.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
            message="minReplicas must not exceed maxReplicas",
            check=lambda p: p.max_replicas is None or p.min_replicas <= p.max_replicas,
            field="minReplicas",
        ),
    )

    @property
    def replica_bounds(self) -> tuple[int, int]:
        """(min, max) replicas; max is at least 1 so a scaled-to-zero pool can come back."""
        upper = self.max_replicas if self.max_replicas is not None else max(self.min_replicas, 1)
        return self.min_replicas, upper


class ServingLimits(_Object):
    """Admission limits per replica: overload becomes a fast 503, never an unbounded queue."""

    max_concurrent_requests: Count = Field(
        default=64, description="Requests a replica runs at once."
    )
    max_queued_requests: int = Field(
        default=256,
        ge=0,
        le=1_000_000,
        description="Requests waiting for a replica before new ones are refused with 503.",
    )
    target_concurrent_requests: Count | None = Field(
        default=None,
        description="Autoscaling target per replica. Default: half of maxConcurrentRequests.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="!has(self.targetConcurrentRequests) || "
            "self.targetConcurrentRequests <= self.maxConcurrentRequests",
            message="targetConcurrentRequests must not exceed maxConcurrentRequests",
            check=lambda s: (
                s.target_concurrent_requests is None
                or s.target_concurrent_requests <= s.max_concurrent_requests
            ),
            field="targetConcurrentRequests",
        ),
    )


def _engines_for(accelerator: Accelerator) -> tuple[RunningEngine, ...]:
    return {
        Accelerator.NVIDIA: (Engine.VLLM,),
        Accelerator.APPLE: (Engine.MLX,),
        Accelerator.CPU: (Engine.VLLM, Engine.MLX),
    }[accelerator]


QUANTITY = r"^([0-9]+(\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"
"""A byte size as Kubernetes writes memory quantities (``16Gi``, ``8000M``, ``17179869184``)."""


class ModelArchitecture(_Object):
    """The numbers that size a model's KV cache, as its ``config.json`` names them."""

    num_layers: Count = Field(
        description="Transformer layers (`num_hidden_layers` in config.json)."
    )
    num_key_value_heads: Count = Field(
        description="Key/value heads per layer (`num_key_value_heads`; `num_attention_heads` for "
        "models without grouped-query attention).",
    )
    head_dim: Count = Field(
        description="Size of one attention head (`head_dim`, else `hidden_size / "
        "num_attention_heads`).",
    )


class ModelMemory(_Object):
    """Facts for the memory admission check, when the operator cannot read the model's files.

    The operator estimates one replica's memory as weights + KV cache and refuses a pool whose
    nodes cannot hold it. Fields given here win over what it reads from the model's config.json.
    """

    parameters: int | None = Field(
        default=None,
        ge=1,
        le=100_000_000_000_000,
        description="Parameter count, e.g. `8030261248`. Weights = parameters x bytes per "
        "parameter of engineArgs.dtype (2 for `auto`). Ignored when weightsSize is set.",
    )
    weights_size: str | None = Field(
        default=None,
        pattern=QUANTITY,
        max_length=32,
        description="Memory the weights take once loaded, as a quantity (`16Gi`); for quantized "
        "models, their file size. Wins over parameters.",
    )
    architecture: ModelArchitecture | None = Field(
        default=None, description="Layer and head numbers that size the KV cache."
    )
    concurrent_sequences: Count = Field(
        default=1,
        description="Full-length sequences (engineArgs.maxModelLen tokens each) whose KV cache "
        "must fit at once. Default 1: the condition vLLM itself checks when it starts; set it to "
        "serving.maxConcurrentRequests for a worst-case guarantee.",
    )


class ToolCalling(_Object):
    """How replies become OpenAI ``tool_calls``: vLLM runs with automatic tool choice and this
    parser, so ``tool_choice: auto`` (the default when ``tools`` are sent) and agent histories
    work; named and ``required`` tool choice too (vLLM holds those to the tools' schemas by
    guided decoding, and needs the parser for them as well)."""

    parser: ToolCallParserName = Field(  # type: ignore[valid-type]
        default=AUTO_PARSER,
        description="`auto`: each replica reads the model's files before vLLM starts (the chat "
        "template's tool-call markers, else config.json's architecture) and the model card "
        "(`GET /v1/models/{id}`, `tool_calling`) says which parser it chose and why, or why "
        "none. Otherwise one of vLLM's tool-call parsers, e.g. `hermes` (Hermes, Qwen 2.5/3), "
        "`llama3_json`, `mistral`, `deepseek_v3`, `openai` (gpt-oss). vLLM pools only.",
    )


class Reasoning(_Object):
    """Reasoning models: vLLM splits the model's thinking into ``reasoning_content``."""

    parser: ReasoningParserName = Field(  # type: ignore[valid-type]
        description="One of vLLM's reasoning parsers, e.g. `deepseek_r1`, `qwen3`, "
        "`openai_gptoss`. vLLM pools only."
    )


CONFIG_MAP_KEY = r"^[-._a-zA-Z0-9]+$"
"""What Kubernetes allows as a ConfigMap key."""
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""What Kubernetes allows as a ConfigMap's name."""


class ConfigMapKeyRef(_Object):
    """One key of a ConfigMap in the model's namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="The ConfigMap's name.")
    key: str = Field(
        pattern=CONFIG_MAP_KEY, max_length=253, description="The key that holds the template."
    )


class ChatTemplate(_Object):
    """A Jinja chat template that replaces the model's own (missing, or without tools)."""

    inline: str | None = Field(
        default=None, min_length=1, max_length=65_536, description="The template itself."
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description="A ConfigMap key holding the template, mounted into the replicas' pods "
        "(clusters only: `modelgrid up` takes `inline`).",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="has(self.inline) != has(self.configMapRef)",
            message="chatTemplate takes exactly one of inline and configMapRef",
            check=lambda t: (t.inline is None) != (t.config_map_ref is None),
            field="inline",
        ),
    )


def _engine_cannot_run_on(engine: Engine, accelerator: Accelerator, *, instead: Engine) -> Rule:
    """The rule that an explicit ``engine`` is not asked to run on pools it has no build for
    (vLLM has none for Apple silicon, MLX none for NVIDIA)."""
    return Rule(
        cel=f"self.engine != '{engine.value}' || "
        f"self.pools.all(p, p.accelerator != '{accelerator.value}')",
        message=f"engine {engine.value} cannot run on {accelerator.value} pools; "
        f"use engine {instead.value} or auto",
        check=lambda s: (
            s.engine is not engine or all(p.accelerator is not accelerator for p in s.pools)
        ),
        field="engine",
    )


class InferenceModelSpec(_Object):
    """What to serve, under which names, on which nodes."""

    model: ModelSource = Field(description="Where the weights come from.")
    served_model_name: str | None = Field(
        default=None,
        pattern=MODEL_NAME,
        max_length=256,
        description="The name clients send as `model`. Default: the resource's name.",
    )
    aliases: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="More names the model answers to (e.g. `gpt-4o-mini` for drop-in clients).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    share_names_with: list[Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]] = (
        Field(
            default_factory=list,
            max_length=32,
            description="Namespaces this model shares its served name and aliases with. A name "
            "belongs to the namespace whose InferenceModel declared it first (oldest "
            "creationTimestamp); a model in another namespace that declares it is not routed "
            "under it and gets condition NamesClaimed=False, reason NameConflict. Sharing is "
            "opt-in on both sides: the owner's model lists the other namespace here, and the "
            "other namespace's model lists the owner's. Models of one namespace always share "
            "their names.",
            json_schema_extra={"x-kubernetes-list-type": "set"},
        )
    )
    engine: Engine = Field(
        default=Engine.AUTO, description="`vllm`, `mlx`, or `auto` (chosen per pool accelerator)."
    )
    engine_args: EngineArgs = Field(default_factory=EngineArgs, description="Engine settings.")
    tool_calling: ToolCalling | None = Field(
        default=None,
        description="Tool calling (function calling) with automatic tool choice. Unset: off, "
        "and vLLM refuses (400) every request whose tool_choice is not `none`.",
    )
    reasoning: Reasoning | None = Field(
        default=None, description="Reasoning output (`reasoning_content`). Unset: off."
    )
    chat_template: ChatTemplate | None = Field(
        default=None, description="A chat template replacing the model's own. Unset: the model's."
    )
    pools: list[Pool] = Field(
        min_length=1,
        max_length=8,
        description="Where replicas run. Several pools serve one model name together.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    serving: ServingLimits = Field(
        default_factory=ServingLimits, description="Per-replica admission limits."
    )
    memory: ModelMemory = Field(
        default_factory=ModelMemory,
        description="Facts for the memory admission check (weights + KV cache against the "
        "selected nodes' memory); needed only when the operator cannot read the model's "
        "config.json.",
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        _engine_cannot_run_on(Engine.VLLM, Accelerator.APPLE, instead=Engine.MLX),
        _engine_cannot_run_on(Engine.MLX, Accelerator.NVIDIA, instead=Engine.VLLM),
        Rule(
            cel="!has(self.engineArgs) || (self.engineArgs.tensorParallelSize == 1 && "
            "self.engineArgs.pipelineParallelSize == 1) || self.pools.all(p, p.accelerator == 'nvidia')",
            message="tensorParallelSize and pipelineParallelSize above 1 need every pool to be nvidia",
            check=lambda s: (
                s.engine_args.gpus_per_replica == 1
                or all(p.accelerator is Accelerator.NVIDIA for p in s.pools)
            ),
            field="engineArgs",
        ),
        Rule(
            cel="!has(self.servedModelName) || !has(self.aliases) || "
            "!(self.servedModelName in self.aliases)",
            message="aliases must differ from servedModelName",
            check=lambda s: s.served_model_name not in s.aliases,
            field="aliases",
        ),
    )

    @field_validator("aliases")
    @classmethod
    def _aliases_are_names(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            if not re.match(MODEL_NAME, alias) or len(alias) > 256:
                raise ValueError(f"alias {alias!r} is not a valid model name")
        if len(set(aliases)) != len(aliases):
            raise ValueError("aliases must be unique")
        return aliases

    @field_validator("pools")
    @classmethod
    def _pool_names_unique(cls, pools: list[Pool]) -> list[Pool]:
        names = [p.name for p in pools]
        if len(set(names)) != len(names):
            raise ValueError("pool names must be unique")
        return pools

    def engine_for(self, pool: Pool) -> RunningEngine:
        """The concrete engine of a pool: the spec's engine, or the accelerator's default."""
        if self.engine is Engine.AUTO:
            return _engines_for(pool.accelerator)[0]
        return self.engine


ALIAS_ITEM_SCHEMA = {"type": "string", "pattern": MODEL_NAME, "maxLength": 256}
"""Schema of one alias; pydantic cannot attach it to list items, the CRD generator does."""


class Phase(StrEnum):
    """Where the model is in its life, in the order a healthy rollout passes them."""

    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    LOADING = "Loading"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class ConditionType(StrEnum):
    """Condition types in ``status.conditions``."""

    READY = "Ready"
    """The model answers requests on every pool."""
    SPEC_VALID = "SpecValid"
    """The spec passed the operator's validation."""
    RAY_SERVICE_APPLIED = "RayServiceApplied"
    """The child RayService matches the spec."""
    MEMORY_ADMITTED = "MemoryAdmitted"
    """Every pool's replica fits in the memory of a node it may run on (or no estimate could be
    made, which admits the pool and says so)."""
    NAMES_CLAIMED = "NamesClaimed"
    """The model holds every name it declares: no other namespace claimed one first (or that
    namespace shares it, see ``spec.shareNamesWith``)."""
    PROGRESSING = "Progressing"
    """No pool's new Ray cluster has been starting for longer than the operator's upgrade
    deadline (False: one has, and the message says what it lacks)."""
    PODS_HEALTHY = "PodsHealthy"
    """No pod of the model's Ray clusters (heads and workers) is failing to start (False: the
    reason is the pod's own, e.g. ``ImagePullBackOff``; the message names pod, container and
    what the kubelet or the scheduler said)."""


class Reason(StrEnum):
    """Condition reasons: CamelCase words users can grep for."""

    VALID = "Valid"
    INVALID_SPEC = "InvalidSpec"
    APPLIED = "Applied"
    KUBERAY_MISSING = "KubeRayMissing"
    APPLY_FAILED = "ApplyFailed"
    WAITING_FOR_RAY_SERVICE = "WaitingForRayService"
    SCHEDULING_PODS = "SchedulingPods"
    LOADING_MODEL = "LoadingModel"
    SERVING = "Serving"
    REPLICAS_MISSING = "ReplicasMissing"
    DEPLOY_FAILED = "DeployFailed"
    INSUFFICIENT_MEMORY = "InsufficientMemory"
    FITS = "Fits"
    NO_ESTIMATE = "NoEstimate"
    NO_CAPACITY = "NoCapacity"
    KEPT_RUNNING = "KeptRunning"
    """A pool the memory admission refuses now is kept as it runs (never torn down)."""
    NAMES_HELD = "NamesHeld"
    NAME_CONFLICT = "NameConflict"
    CONFLICT = "Conflict"
    """An object of the child's name exists that this model does not own: nothing is written."""
    UP_TO_DATE = "UpToDate"
    """Every pool runs the Ray cluster of its current spec."""
    NEW_CLUSTER_STARTING = "NewClusterStarting"
    """A pool's new Ray cluster is starting, within the deadline; the serving one serves."""
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    """A pool's new Ray cluster did not serve within the deadline (the message says what it
    lacks); the serving one keeps serving."""
    NO_FAILING_PODS = "NoFailingPods"
    """No pod of the model is failing to start."""
    # The reasons below are the kubelet's and the scheduler's own, copied from the failing pod.
    ERR_IMAGE_PULL = "ErrImagePull"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    INVALID_IMAGE_NAME = "InvalidImageName"
    ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    CREATE_CONTAINER_ERROR = "CreateContainerError"
    RUN_CONTAINER_ERROR = "RunContainerError"
    UNSCHEDULABLE = "Unschedulable"
    INIT_CONTAINER_FAILED = "InitContainerFailed"
    """An init container exited non-zero (the kubelet shows ``Init:Error``; ``:`` is no part
    of a reason)."""


class Condition(_Object):
    """A standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="One CamelCase word saying why.")
    message: str = Field(default="", description="What a person should know.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="The spec generation this condition was computed from."
    )


class PoolStatus(_Object):
    """Replica counts of one pool."""

    name: str = Field(description="Pool name.")
    accelerator: Accelerator = Field(description="Node kind of the pool.")
    engine: Engine = Field(description="Engine the pool runs.")
    ready_replicas: int = Field(
        default=0,
        description="Worker pods ready to serve (none while the pool's Serve application has "
        "failed to deploy).",
    )
    desired_replicas: int = Field(default=0, description="Worker pods wanted now.")
    endpoint: str | None = Field(
        default=None,
        description="In-cluster base URL of the pool's Serve application (no trailing slash; "
        "OpenAI routes are `<endpoint>/v1/...`). Unset while the pool is not rendered.",
    )
    ray_service: str | None = Field(
        default=None,
        description="Name of the pool's own RayService (one per pool). Unset while the pool "
        "has none.",
    )


class PodFailure(_Object):
    """Pods of the model that cannot start, alike in pool, container and reason."""

    pool: str = Field(
        default="",
        description="The pool whose Ray cluster the pod belongs to (heads included); empty "
        "when no pool's RayService names the pod's cluster.",
    )
    pod: str = Field(description="One such pod (the first by name).")
    pods: int = Field(default=1, ge=1, description="How many pods fail alike.")
    container: str = Field(
        default="", description="The failing container; empty when the pod is not scheduled."
    )
    init: bool = Field(default=False, description="The container is an init container.")
    reason: str = Field(description="The pod's own reason, e.g. ImagePullBackOff.")
    message: str = Field(
        default="",
        description="What the kubelet or the scheduler said (cut to 1000 characters).",
    )
    since: str = Field(
        description="When the operator first saw this failure (RFC 3339): the start of "
        "the operator's `podFailureDeadlineSeconds`."
    )


class PhaseTimes(_Object):
    """Seconds spent in each phase on the way to the first Ready: the cold-start budget."""

    pending: float = Field(default=0.0, description="Seconds until the RayService existed.")
    scheduling: float = Field(default=0.0, description="Seconds until pods were running.")
    loading: float = Field(default=0.0, description="Seconds loading and warming the model.")
    total: float | None = Field(
        default=None, description="Seconds from creation to Ready; unset until Ready."
    )


def _first_pool(pool_field: str, what: str) -> Any:
    """A status field that repeats ``pools[].<pool_field>`` of the first rendered pool: the
    columns of ``kubectl get`` and clients of one-pool models read it there. One phrase for
    every such field, so their descriptions say the same thing the same way."""
    return Field(
        default=None,
        description=f"{what}: the first rendered pool's (each pool's own is in "
        f"pools[].{pool_field}).",
    )


class InferenceModelStatus(_Object):
    """What the operator observed, for ``kubectl get`` and the gateway."""

    phase: Phase = Field(
        default=Phase.PENDING,
        description="Pending, Scheduling, Loading, Ready, Degraded or Failed.",
    )
    phase_since: str | None = Field(default=None, description="When the phase began (RFC 3339).")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Standard conditions: Ready, SpecValid, RayServiceApplied, MemoryAdmitted, "
        "NamesClaimed, Progressing, PodsHealthy.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation the status describes."
    )
    endpoint: str | None = _first_pool(
        "endpoint", "In-cluster URL of the OpenAI API, ending in /v1"
    )
    served_model_names: list[str] = Field(
        default_factory=list, description="Every name the model answers to."
    )
    ready_replicas: int = Field(default=0, description="Ready worker pods over all pools.")
    replicas: str = Field(default="0/0", description="ready/desired over all pools, for display.")
    pools: list[PoolStatus] = Field(
        default_factory=list,
        description="Replica counts per pool.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    time_to_ready: PhaseTimes = Field(
        default_factory=PhaseTimes, description="Seconds per phase until the first Ready."
    )
    ray_service: str | None = _first_pool("rayService", "Name of the RayService")
    retiring_ray_services: list[str] = Field(
        default_factory=list,
        description="RayServices of this model that no pool renders any more (a removed "
        "pool's, or the one RayService of an operator before one per pool): they serve on "
        "until every pool's own serves, then they are deleted.",
    )
    pod_failures: list[PodFailure] = Field(
        default_factory=list,
        description="Pods that cannot start (image pull, crash loop, unschedulable, init "
        "container, container config), one entry per pool, container and reason, with when "
        "each was first seen. Each new one is also posted as a Warning Event.",
    )


class InferenceModel(_Object):
    """A model served behind modelgrid's OpenAI-compatible API."""

    api_version: Literal["modelgrid.io/v1alpha1"] = Field(default=API_VERSION)
    kind: Literal["InferenceModel"] = Field(default=KIND)
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: InferenceModelSpec
    status: InferenceModelStatus | None = None

    rules: ClassVar[tuple[Rule, ...]] = (RESOURCE_NAME,)

    @property
    def name(self) -> str:
        """The resource's name."""
        return str(self.metadata["name"])

    @property
    def namespace(self) -> str:
        """The resource's namespace (``default`` when the file names none)."""
        return str(self.metadata.get("namespace") or "default")

    @property
    def served_model_name(self) -> str:
        """The name clients use: the spec's, else the resource's name."""
        return self.spec.served_model_name or self.name

    @property
    def served_names(self) -> list[str]:
        """The served name and every alias."""
        return [self.served_model_name, *self.spec.aliases]
