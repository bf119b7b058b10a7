"""The Serve application the operator deploys: ``modelgrid_serving.app:build_app``.

The RayService's ``serveConfigV2`` names this import path with an :class:`AppConfig` dump as
``args``; ``modelgrid up`` calls the same function.
"""

from __future__ import annotations

import re
from typing import Any

from .config import AppConfig, Engine
from .sources import resolve_model_source


def deployment_name(config: AppConfig) -> str:
    """The Serve deployment name of a pool: model and pool, in characters Serve accepts."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", f"{config.model_name}-{config.pool.name}")


def deployment_options(config: AppConfig) -> dict[str, Any]:
    """Serve options of a pool's deployment (replicas, queueing, placement)."""
    pool = config.pool
    autoscaling: dict[str, Any] = {
        "min_replicas": pool.min_replicas,
        "max_replicas": pool.max_replicas,
        "initial_replicas": max(pool.min_replicas, 1),
    }
    if config.target_ongoing_requests is not None:
        autoscaling["target_ongoing_requests"] = config.target_ongoing_requests
    actor: dict[str, Any] = {}
    if pool.ray_resource:
        # One unit per worker: replicas land on their pool's workers, one per worker.
        actor["resources"] = {pool.ray_resource: 1}
    return {
        "autoscaling_config": autoscaling,
        "max_ongoing_requests": config.max_ongoing_requests,
        "max_queued_requests": config.max_queued_requests,
        "ray_actor_options": actor,
    }


def build_app(args: dict[str, Any]) -> Any:
    """Build the Serve application of one pool of an InferenceModel.

    An InferenceModel with N pools becomes N applications, each given the AppConfig of its pool
    (the operator renders them; ``modelgrid up`` deploys them likewise).

    Args:
        args: An :class:`AppConfig` as a dict (the ``args`` of the Serve config).

    Returns:
        A ``ray.serve.Application`` whose ingress answers the OpenAI API.

    Raises:
        pydantic.ValidationError: ``args`` is not a valid AppConfig.
        ModelSourceError: the model source is a local path that does not exist.
        ValueError: an MLX pool without ``mlx_server_url``.
    """
    config = AppConfig.model_validate(args)
    config = config.model_copy(update={"model_source": resolve_model_source(config.model_source)})
    if config.pool.engine == Engine.MLX:
        return _build_mlx(config)
    return _build_vllm(config)


def _build_vllm(config: AppConfig) -> Any:
    from ray import serve

    from .engines.vllm import to_llm_config
    from .server import VLLMServer

    llm_config = to_llm_config(config)
    options = VLLMServer.get_deployment_options(llm_config)
    ours = deployment_options(config)
    actor = {**options.get("ray_actor_options", {}), **ours.pop("ray_actor_options")}
    if "resources" in actor and options.get("placement_group_bundles"):
        # The replica actor takes the first bundle: the pool's resource must be in it.
        first, *rest = options["placement_group_bundles"]
        options["placement_group_bundles"] = [{**first, **actor["resources"]}, *rest]
    options.update(ours, ray_actor_options=actor, name=deployment_name(config))
    deployment = serve.deployment(VLLMServer, **options)
    return deployment.bind(llm_config, app_config=config.model_dump(mode="json"))


MLX_REPLICA_CPUS = 0.5
"""An MLX replica only relays HTTP; the MLX server beside it does the work."""


def _build_mlx(config: AppConfig) -> Any:
    pool = config.pool
    if not pool.mlx_server_url:
        raise ValueError(
            f"{config.model_name}: pool {pool.name} runs MLX but has no mlx_server_url "
            "(the MLX server beside its replicas)"
        )
    from ray import serve

    from .mlx_server import MLXServer

    options = deployment_options(config)
    options["ray_actor_options"] = {"num_cpus": MLX_REPLICA_CPUS, **options["ray_actor_options"]}
    deployment = serve.deployment(MLXServer, name=deployment_name(config), **options)
    return deployment.bind(app_config=config.model_dump(mode="json"))
