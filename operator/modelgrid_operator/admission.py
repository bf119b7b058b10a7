"""Memory admission: will one replica of a pool fit on a node it may run on? Pure.

A replica needs its weights plus the KV cache of the sequences it must hold::

    weights = memory.weightsSize
            | memory.parameters x bytes per parameter (engineArgs.dtype; 2 for auto)
            | the size of the weight files, or parameters from config.json
    KV      = 2 (K and V) x layers x KV heads x head size x bytes per element
              x maxModelLen x memory.concurrentSequences (default 1)

The concurrency term is ``spec.memory.concurrentSequences``, not ``serving.maxConcurrentRequests``:
vLLM refuses to start when one full-length sequence does not fit (so 1 is the crash-loop line),
and its paged cache serves many shorter requests in the room of one long one; pricing every
allowed request at full length would refuse models that serve fine.

What a node offers one replica:

- Apple and CPU pools: ``status.allocatable.memory`` (Apple silicon's memory is unified: the GPU
  uses the same RAM).
- NVIDIA pools: the per-GPU memory the node advertises in the GPU feature discovery label
  ``nvidia.com/gpu.memory`` (MiB) x GPUs per replica x ``engineArgs.gpuMemoryUtilization``.

Nodes are the ones the pool's pods select (the rendered ``nodeSelector``). A pool is refused only
when it has an estimate and every selected node's capacity is known and too small; when the
estimate or the capacities are unknown, it is admitted and the message says what was missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from modelgrid_operator import api
from modelgrid_operator.quantity import quantity_int
from modelgrid_operator.render.pods import worker_pod
from modelgrid_operator.settings import RenderSettings

GIB = 1024**3
MIB = 1024**2
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
"""Per-GPU memory in MiB, set on GPU nodes by NVIDIA GPU feature discovery."""
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
DEFAULT_DTYPE_BYTES = 2


def gib(size: int) -> str:
    """A byte count as GiB with one decimal, as messages show it."""
    return f"{size / GIB:.1f} GiB"


@dataclass(frozen=True)
class ModelFacts:
    """What was read about a model from its files or metadata.

    Attributes:
        source: where the facts were read, for messages (``config.json in /models/x``).
        weights_bytes: size of the weight files.
        parameters: parameter count (from metadata, or computed from a dense architecture).
        dtype: ``torch_dtype`` of config.json.
        architecture: layer and head numbers that size the KV cache.
        max_position_embeddings: the model's own context length.
    """

    source: str
    weights_bytes: int | None = None
    parameters: int | None = None
    dtype: str | None = None
    architecture: api.ModelArchitecture | None = None
    max_position_embeddings: int | None = None


def facts_from_config(
    config: Mapping[str, Any], *, source: str, weights_bytes: int | None = None
) -> ModelFacts:
    """Facts from a Hugging Face ``config.json`` (text settings nested under ``text_config`` for
    multimodal models are read too). Unknown or missing fields leave the fact unset."""
    cfg = {**config, **(config.get("text_config") or {})}

    def number(key: str) -> int | None:
        value = cfg.get(key)
        return value if isinstance(value, int) and value > 0 else None

    layers, heads, hidden = (
        number("num_hidden_layers"),
        number("num_attention_heads"),
        number("hidden_size"),
    )
    kv_heads = number("num_key_value_heads") or heads
    head_dim = number("head_dim") or (hidden // heads if hidden and heads else None)
    architecture = (
        api.ModelArchitecture(num_layers=layers, num_key_value_heads=kv_heads, head_dim=head_dim)
        if layers and kv_heads and head_dim
        else None
    )
    return ModelFacts(
        source=source,
        weights_bytes=weights_bytes,
        parameters=_dense_parameters(cfg, architecture),
        dtype=cfg.get("torch_dtype") if isinstance(cfg.get("torch_dtype"), str) else None,
        architecture=architecture,
        max_position_embeddings=number("max_position_embeddings"),
    )


def _dense_parameters(cfg: Mapping[str, Any], arch: api.ModelArchitecture | None) -> int | None:
    """Parameters of a Llama-style dense decoder (attention, gated MLP, norms, embeddings)."""
    hidden, vocab, inter = (
        cfg.get("hidden_size"),
        cfg.get("vocab_size"),
        cfg.get("intermediate_size"),
    )
    heads = cfg.get("num_attention_heads")
    if arch is None or not all(isinstance(v, int) for v in (hidden, vocab, inter, heads)):
        return None
    q = heads * arch.head_dim
    kv = arch.num_key_value_heads * arch.head_dim
    per_layer = hidden * q + 2 * hidden * kv + q * hidden + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    return embeddings + arch.num_layers * per_layer + hidden


@dataclass(frozen=True)
class Estimate:
    """One replica's memory need, and where each number came from."""

    weights_bytes: int
    weights_basis: str
    kv_bytes: int | None
    """None when the architecture or the context length is unknown: then the need is a floor."""
    kv_basis: str

    @property
    def total(self) -> int:
        return self.weights_bytes + (self.kv_bytes or 0)

    def describe(self) -> str:
        """``21.0 GiB = weights 15.0 GiB (...) + KV cache 6.0 GiB (...)``."""
        kv = gib(self.kv_bytes) if self.kv_bytes is not None else "unknown"
        return (
            f"{gib(self.total)} = weights {gib(self.weights_bytes)} ({self.weights_basis}) "
            f"+ KV cache {kv} ({self.kv_basis})"
        )


def estimate_memory(spec: api.InferenceModelSpec, facts: ModelFacts | None) -> Estimate | str:
    """One replica's memory: weights + KV cache; or, when no weights size is known, why not.

    Spec fields win over facts read from the model, so a user can always correct the estimate.
    """
    hints = spec.memory
    stored = (facts.dtype if facts else None) or ""
    dtype = spec.engine_args.dtype if spec.engine_args.dtype != "auto" else stored
    per_param = DTYPE_BYTES.get(dtype, DEFAULT_DTYPE_BYTES)
    dtype_note = f"{per_param} bytes per parameter"
    weights: tuple[int, str] | None = None
    if hints.weights_size is not None:
        size = quantity_int(hints.weights_size)
        if size is not None:
            weights = (size, "spec.memory.weightsSize")
    elif hints.parameters is not None:
        weights = (hints.parameters * per_param, f"{hints.parameters:,} parameters x {dtype_note}")
    elif facts is not None and facts.weights_bytes:
        weights = (facts.weights_bytes, f"weight files, {facts.source}")
    elif facts is not None and facts.parameters:
        weights = (
            facts.parameters * per_param,
            f"{facts.parameters:,} parameters from {facts.source} x {dtype_note}",
        )
    if weights is None:
        where = (
            f"{facts.source} gave no sizes" if facts else "the model's config.json is not readable"
        )
        return (
            f"no memory estimate: {where}; set spec.memory.weightsSize or spec.memory.parameters "
            "(and spec.memory.architecture) to have pools checked against node memory"
        )
    arch = hints.architecture or (facts.architecture if facts else None)
    length = spec.engine_args.max_model_len or (facts.max_position_embeddings if facts else None)
    sequences = hints.concurrent_sequences
    if arch is None or length is None:
        missing = "architecture" if arch is None else "maxModelLen"
        return Estimate(*weights, None, f"{missing} unknown: the need is at least the weights")
    tokens = length * sequences
    kv = 2 * arch.num_layers * arch.num_key_value_heads * arch.head_dim * per_param * tokens
    basis = f"{length} tokens x {sequences} sequence{'s' if sequences > 1 else ''}"
    return Estimate(*weights, kv, basis)


@dataclass(frozen=True)
class Capacity:
    """What one node offers one replica of a pool."""

    node: str
    bytes: int | None
    """None when the node does not say (no allocatable memory, no GPU memory label)."""
    basis: str


def node_selector(
    model: api.InferenceModel, pool: api.Pool, settings: RenderSettings
) -> dict[str, str]:
    """The labels a pool's pods require: exactly what the rendered pod template selects."""
    return dict(worker_pod(model, pool, settings)["spec"].get("nodeSelector") or {})


def selected(
    nodes: Sequence[Mapping[str, Any]], selector: Mapping[str, str]
) -> list[Mapping[str, Any]]:
    """The nodes whose labels carry every pair of ``selector``."""
    return [
        n
        for n in nodes
        if all(
            ((n.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items()
        )
    ]


def node_capacity(
    node: Mapping[str, Any], pool: api.Pool, spec: api.InferenceModelSpec
) -> Capacity:
    """What ``node`` offers one replica of ``pool``: unified memory, or GPU memory for NVIDIA."""
    meta = node.get("metadata") or {}
    name = str(meta.get("name", "?"))
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    if pool.accelerator is not api.Accelerator.NVIDIA:
        size = quantity_int(allocatable.get("memory")) if "memory" in allocatable else None
        return Capacity(name, size, "allocatable memory")
    per_gpu = quantity_int((meta.get("labels") or {}).get(GPU_MEMORY_LABEL, ""))
    if per_gpu is None:
        return Capacity(name, None, f"no {GPU_MEMORY_LABEL} label")
    wanted = spec.engine_args.gpus_per_replica
    has = quantity_int(allocatable.get("nvidia.com/gpu", wanted))
    gpus = min(wanted, has) if has is not None else wanted
    share = spec.engine_args.gpu_memory_utilization
    size = int(per_gpu * MIB * gpus * share)
    return Capacity(name, size, f"{gpus} x {per_gpu} MiB GPU x {share:g} utilization")


NOT_DEPLOYED = "the pool is not deployed"
KEPT = (
    "the pool keeps running as deployed (a running pool is never torn down for want of a node "
    "that fits now)"
)


@dataclass(frozen=True)
class Admission:
    """The decision for one pool.

    Attributes:
        pool: the pool's name.
        admitted: whether one replica fits on a node the pool may run on.
        reason: why.
        message: the numbers, for conditions.
        kept: refused, but the pool runs already and stays as it is (see :meth:`keep`).
    """

    pool: str
    admitted: bool
    reason: api.Reason
    message: str
    kept: bool = False

    def keep(self) -> Admission:
        """This refusal for a pool that runs already: it is kept, not torn down.

        No node that fits *now* is not a reason to stop what serves: the one large node may be
        drained for an upgrade, and deleting the pool would turn a short wait into a cold start.
        """
        if self.admitted:
            return self
        message = self.message.removesuffix(NOT_DEPLOYED) + KEPT
        return replace(self, kept=True, message=message)


def admit_pool(
    model: api.InferenceModel,
    pool: api.Pool,
    estimate: Estimate | str,
    nodes: Sequence[Mapping[str, Any]] | None,
    settings: RenderSettings,
) -> Admission:
    """Admit or refuse one pool.

    Args:
        model: the model.
        pool: one of its pools.
        estimate: :func:`estimate_memory`'s answer (an estimate, or why there is none).
        nodes: the cluster's Nodes as read, or None when they could not be read.
        settings: render settings (the node labels pools select).
    """
    name = pool.name
    if isinstance(estimate, str):
        return Admission(name, True, api.Reason.NO_ESTIMATE, f"pool {name}: {estimate}")
    need = estimate.describe()
    if nodes is None:
        return Admission(
            name, True, api.Reason.NO_CAPACITY, f"pool {name}: needs {need}; nodes not readable"
        )
    selector = node_selector(model, pool, settings)
    capacities = [node_capacity(n, pool, model.spec) for n in selected(nodes, selector)]
    where = ", ".join(f"{k}={v}" for k, v in selector.items()) or "any node"
    if not capacities:
        return Admission(
            name,
            True,
            api.Reason.NO_CAPACITY,
            f"pool {name}: needs {need}; no node matches {where} yet",
        )
    known = [c for c in capacities if c.bytes is not None]
    fits = [c for c in known if c.bytes is not None and c.bytes >= estimate.total]
    if fits or len(known) < len(capacities):
        best = max(known, key=lambda c: c.bytes or 0, default=None)
        room = f"; largest node {best.node} {gib(best.bytes or 0)}" if best else ""
        reason = api.Reason.FITS if fits else api.Reason.NO_CAPACITY
        unknown = "" if fits else "; some selected nodes do not say their memory"
        return Admission(name, True, reason, f"pool {name}: needs {need}{room}{unknown}")
    best = max(known, key=lambda c: c.bytes or 0)
    return Admission(
        name,
        False,
        api.Reason.INSUFFICIENT_MEMORY,
        f"pool {name}: needs {need}; largest node {best.node} has {gib(best.bytes or 0)} "
        f"({best.basis}) of {len(known)} selected by {where}; {NOT_DEPLOYED}",
    )


def admit(
    model: api.InferenceModel,
    facts: ModelFacts | None,
    nodes: Sequence[Mapping[str, Any]] | None,
    settings: RenderSettings,
) -> tuple[Admission, ...]:
    """The decision for every pool of ``model``, in spec order."""
    estimate = estimate_memory(model.spec, facts)
    return tuple(admit_pool(model, p, estimate, nodes, settings) for p in model.spec.pools)
