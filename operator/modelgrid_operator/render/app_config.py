"""InferenceModel -> the Serve application's :class:`~modelgrid_serving.config.AppConfig`.

The same fields feed the cluster (one AppConfig per pool, through the RayService's Serve config)
and ``modelgrid up`` (a :class:`~modelgrid_serving.config.LocalRun` of the pools it runs, through
an embedded Ray), so both serve a model the same way.
"""

from __future__ import annotations

import posixpath

from modelgrid_serving.config import AppConfig, LocalRun, PoolConfig

from modelgrid_operator import api
from modelgrid_operator.settings import RenderSettings

CHAT_TEMPLATE_DIR = "/etc/modelgrid/chat-template"
"""Where a pod mounts the ConfigMap key of ``spec.chatTemplate.configMapRef``."""
CHAT_TEMPLATE_FILE = "chat_template.jinja"
"""The file name the key is mounted under, whatever the key is called."""


def chat_template_in_pod(template: api.ChatTemplate | None) -> str | None:
    """What a replica passes vLLM as ``chat_template``: the inline text, or the mounted file."""
    if template is None:
        return None
    if template.config_map_ref is not None:
        return f"{CHAT_TEMPLATE_DIR}/{CHAT_TEMPLATE_FILE}"
    return template.inline


def pool_resource(pool: api.Pool) -> str:
    """The custom Ray resource that pins a pool's replicas to its worker group."""
    return f"{api.GROUP}/pool-{pool.name}"


def model_path_in_pod(source: api.ModelSource, settings: RenderSettings) -> str:
    """What the engine loads inside a pod: an HF id, an object store URI, or a mounted path."""
    if source.kind is api.SourceKind.PVC:
        claim, path = source.pvc
        return "/".join(p for p in (settings.model_cache_path, claim, path) if p)
    if source.kind is api.SourceKind.BUILTIN:
        return f"{settings.model_cache_path}/builtin/{source.location}"
    if source.kind is api.SourceKind.PATH:
        return node_path(source)
    return source.location


def node_path(source: api.ModelSource) -> str:
    """A path source's directory on the node, normalised (``/a//b/./c`` -> ``/a/b/c``, and
    ``..`` resolved): the path the operator's policy checks is the path that is mounted."""
    return "/" + posixpath.normpath(source.location).lstrip("/")


def _pool_config(
    spec: api.InferenceModelSpec, pool: api.Pool, settings: RenderSettings
) -> PoolConfig:
    engine = spec.engine_for(pool)
    low, high = pool.replica_bounds
    return PoolConfig(
        name=pool.name,
        accelerator=pool.accelerator,
        engine=engine,
        min_replicas=low,
        max_replicas=high,
        ray_resource=pool_resource(pool),
        gpus_per_replica=spec.engine_args.gpus_per_replica
        if pool.accelerator is api.Accelerator.NVIDIA
        else 0,
        mlx_server_url=f"http://127.0.0.1:{settings.mlx_port}"
        if engine is api.Engine.MLX and pool.accelerator is api.Accelerator.APPLE
        else None,
    )


def _common(model: api.InferenceModel, model_source: str, chat_template: str | None) -> dict:
    spec = model.spec
    args = spec.engine_args
    limits = spec.serving
    return {
        "model_name": model.served_model_name,
        "aliases": tuple(spec.aliases),
        "model_source": model_source,
        "revision": spec.model.revision,
        "max_model_len": args.max_model_len,
        "dtype": args.dtype,
        "tensor_parallel_size": args.tensor_parallel_size,
        "pipeline_parallel_size": args.pipeline_parallel_size,
        "gpu_memory_utilization": args.gpu_memory_utilization,
        "engine_kwargs": dict(args.extra_args),
        "tool_call_parser": spec.tool_calling.parser if spec.tool_calling else None,
        "reasoning_parser": spec.reasoning.parser if spec.reasoning else None,
        "chat_template": chat_template,
        "max_ongoing_requests": limits.max_concurrent_requests,
        "max_queued_requests": limits.max_queued_requests,
        "target_ongoing_requests": limits.target_concurrent_requests
        or max(1, limits.max_concurrent_requests // 2),
    }


def to_app_config(model: api.InferenceModel, pool: api.Pool, settings: RenderSettings) -> AppConfig:
    """The Serve application config of one pool in the cluster.

    Each pool is its own Serve application (one pool per AppConfig), so a pool that fails to
    deploy or is refused leaves the others serving, and the gateway can weigh pools apart.
    """
    return AppConfig(
        **_common(
            model,
            model_path_in_pod(model.spec.model, settings),
            chat_template_in_pod(model.spec.chat_template),
        ),
        pool=_pool_config(model.spec, pool, settings),
        metrics_port=settings.metrics_port,
    )


def to_local_run(
    model: api.InferenceModel, *, builtin_root: str, pool: str | None = None
) -> LocalRun:
    """What ``modelgrid up`` serves: one replica per pool, this machine.

    Args:
        model: the InferenceModel, as the cluster would get it.
        builtin_root: the directory that holds generated built-in models on this machine.
        pool: run only this pool; default every pool (each its own application, as in a
            cluster; an Apple pool runs MLX on this machine's CPU).

    Raises:
        ValueError: when ``pool`` names no pool of the model, or the source is a PVC or the
            chat template a ConfigMap (which exist only inside a cluster).
    """
    pools = {p.name: p for p in model.spec.pools}
    if pool is not None and pool not in pools:
        raise ValueError(f"no pool named {pool!r}; the model has {', '.join(pools)}")
    chosen = [pools[pool]] if pool is not None else list(model.spec.pools)
    source = model.spec.model
    if source.kind is api.SourceKind.PVC:
        raise ValueError(
            f"spec.model.uri: {source.uri} is a PersistentVolumeClaim, which exists only in a "
            "cluster; point uri at a local path or a Hugging Face id to run locally"
        )
    template = model.spec.chat_template
    if template is not None and template.config_map_ref is not None:
        raise ValueError(
            f"spec.chatTemplate.configMapRef: ConfigMap {template.config_map_ref.name} exists "
            "only in a cluster; give the template as spec.chatTemplate.inline to run locally"
        )
    path = (
        f"{builtin_root}/{source.location}"
        if source.kind is api.SourceKind.BUILTIN
        else source.location
    )
    return LocalRun(
        **_common(model, path, chat_template_in_pod(template)),
        pools=tuple(
            PoolConfig(
                name=p.name,
                accelerator=p.accelerator,
                engine=model.spec.engine_for(p),
                min_replicas=1,
                max_replicas=1,
                gpus_per_replica=model.spec.engine_args.gpus_per_replica
                if p.accelerator is api.Accelerator.NVIDIA
                else 0,
            )
            for p in chosen
        ),
    )
