"""InferenceModel -> KubeRay RayService (ray.io/v1).

One RayService per model: a head group and one worker group per pool. Each worker advertises
its pool's custom Ray resource once, and each pool's Serve deployment asks for one unit per
replica, so replicas land on their own pool's nodes, one per worker pod. The Serve config is
built as data and dumped to YAML (KubeRay takes ``serveConfigV2`` as a string).
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from modelgrid_serving.config import IMPORT_PATH

from modelgrid_operator import api
from modelgrid_operator.render.app_config import pool_resource, to_app_config
from modelgrid_operator.render.metadata import Owner, child_metadata
from modelgrid_operator.render.pods import head_pod, worker_pod
from modelgrid_operator.settings import RenderSettings

RAY_API_VERSION = "ray.io/v1"


def rayservice_name(model_name: str) -> str:
    """The child RayService is named after the model."""
    return model_name


def serve_endpoint(model: api.InferenceModel, settings: RenderSettings) -> str:
    """In-cluster base URL of the model's OpenAI API (KubeRay's ``<name>-serve-svc``)."""
    return (
        f"http://{rayservice_name(model.name)}-serve-svc.{model.namespace}.svc:"
        f"{settings.serve_port}/v1"
    )


def serve_config(model: api.InferenceModel, settings: RenderSettings) -> dict[str, Any]:
    """The Serve config (``serveConfigV2``) as data: one application for the model."""
    app = to_app_config(model, settings)
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": settings.serve_port},
        "applications": [
            {
                "name": model.name,
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": app.model_dump(mode="json"),
            }
        ],
    }


def _worker_group(
    model: api.InferenceModel, pool: api.Pool, settings: RenderSettings
) -> dict[str, Any]:
    low, high = pool.replica_bounds
    params = {"resources": json.dumps(json.dumps({pool_resource(pool): 1}))}
    gpus = model.spec.engine_args.gpus_per_replica
    if pool.accelerator is api.Accelerator.NVIDIA:
        params["num-gpus"] = str(gpus)
    return {
        "groupName": pool.name,
        "replicas": low,
        "minReplicas": low,
        "maxReplicas": high,
        "rayStartParams": params,
        "template": worker_pod(model, pool, settings),
    }


def render_rayservice(
    model: api.InferenceModel, *, settings: RenderSettings, owner: Owner | None = None
) -> dict[str, Any]:
    """Render the RayService that serves ``model``.

    Args:
        model: a validated InferenceModel.
        settings: images and cluster conventions.
        owner: the model's name and uid; when given, the RayService is owned by the model so
            Kubernetes deletes it with the model.

    Returns:
        The RayService as a plain dict, ready to apply.
    """
    autoscaling = any(p.replica_bounds[0] != p.replica_bounds[1] for p in model.spec.pools)
    cluster: dict[str, Any] = {
        "rayVersion": settings.ray_version,
        "enableInTreeAutoscaling": autoscaling,
        "headGroupSpec": {
            "rayStartParams": {"dashboard-host": "0.0.0.0"},
            "template": head_pod(model, settings),
        },
        "workerGroupSpecs": [_worker_group(model, p, settings) for p in model.spec.pools],
    }
    if autoscaling:
        cluster["autoscalerOptions"] = {"upscalingMode": "Default", "idleTimeoutSeconds": 120}
    return {
        "apiVersion": RAY_API_VERSION,
        "kind": "RayService",
        "metadata": dict(child_metadata(model, rayservice_name(model.name), owner)),
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config(model, settings), sort_keys=False),
            "rayClusterConfig": cluster,
        },
    }
