"""InferenceModel -> KubeRay RayService (ray.io/v1).

One RayService per model: a head group and one worker group per pool. Each pool is its own Serve
application (``<model>-<pool>`` at ``/pools/<pool>`` when there are several pools; the model's
name at ``/`` when there is one), so pools deploy, fail and are measured apart. Each worker
advertises its pool's custom Ray resource once, and each pool's Serve deployment asks for one
unit per replica, so replicas land on their own pool's nodes, one per worker pod. The Serve config is
built as data and dumped to YAML (KubeRay takes ``serveConfigV2`` as a string).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import yaml
from modelgrid_serving.config import IMPORT_PATH, application_name, route_prefix

from modelgrid_operator import api
from modelgrid_operator.ray_ports import RAY_METRICS_PORT
from modelgrid_operator.render.app_config import pool_resource, to_app_config
from modelgrid_operator.render.metadata import Owner, child_metadata
from modelgrid_operator.render.pods import head_pod, worker_pod
from modelgrid_operator.render.security import (
    api_access_mount,
    api_access_volume,
    container_security_context,
)
from modelgrid_operator.settings import RenderSettings

RAY_API_VERSION = "ray.io/v1"


def rayservice_name(model_name: str) -> str:
    """The child RayService is named after the model."""
    return model_name


def pool_endpoint(model: api.InferenceModel, pool: api.Pool, settings: RenderSettings) -> str:
    """In-cluster base URL of a pool's application (KubeRay's ``<name>-serve-svc`` + the route
    prefix, no trailing slash): its OpenAI routes are ``<endpoint>/v1/...``."""
    service = (
        f"http://{rayservice_name(model.name)}-serve-svc.{model.namespace}.svc:"
        f"{settings.serve_port}"
    )
    return service + route_prefix(pool.name, len(model.spec.pools)).rstrip("/")


def serve_endpoint(
    model: api.InferenceModel, settings: RenderSettings, pools: Collection[str] | None = None
) -> str:
    """The model's OpenAI base URL (ending in ``/v1``): its first rendered pool's, so a client
    that goes direct reaches a working application.

    Args:
        model: the model.
        settings: cluster conventions.
        pools: names of the pools that are rendered (default: all).
    """
    rendered = [p for p in model.spec.pools if pools is None or p.name in pools]
    first = rendered[0] if rendered else model.spec.pools[0]
    return pool_endpoint(model, first, settings) + "/v1"


def serve_config(
    model: api.InferenceModel, settings: RenderSettings, pools: Collection[str] | None = None
) -> dict[str, Any]:
    """The Serve config (``serveConfigV2``) as data: one application per rendered pool."""
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": settings.serve_port},
        "applications": [
            {
                # Named and routed by the spec's pool count, not the rendered one, so a refused
                # pool never moves the others.
                "name": application_name(model.name, pool.name, len(model.spec.pools)),
                "route_prefix": route_prefix(pool.name, len(model.spec.pools)),
                "import_path": IMPORT_PATH,
                "args": to_app_config(model, pool, settings).model_dump(mode="json"),
            }
            for pool in model.spec.pools
            if pools is None or pool.name in pools
        ],
    }


def _ray_metrics_param() -> dict[str, str]:
    """Ray's metrics port, said where KubeRay would otherwise default it
    (``setMissingRayStartParams`` in its common/pod.go), beside the port that declares it."""
    return {"metrics-export-port": str(RAY_METRICS_PORT)}


def _worker_group(
    model: api.InferenceModel, pool: api.Pool, settings: RenderSettings
) -> dict[str, Any]:
    low, high = pool.replica_bounds
    params = {
        "resources": json.dumps(json.dumps({pool_resource(pool): 1})),
        **_ray_metrics_param(),
    }
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
    model: api.InferenceModel,
    *,
    settings: RenderSettings,
    owner: Owner | None = None,
    pools: Collection[str] | None = None,
) -> dict[str, Any]:
    """Render the RayService that serves ``model``.

    Args:
        model: a validated InferenceModel.
        settings: images and cluster conventions.
        owner: the model's name and uid; when given, the RayService is owned by the model so
            Kubernetes deletes it with the model.
        pools: names of the pools to render (default: all). A pool left out (refused by the
            memory admission) gets neither a worker group nor an application; application names
            and route prefixes still follow the spec's pool count, so they never move.

    Returns:
        The RayService as a plain dict, ready to apply.
    """
    rendered = [p for p in model.spec.pools if pools is None or p.name in pools]
    autoscaling = any(p.replica_bounds[0] != p.replica_bounds[1] for p in rendered)
    cluster: dict[str, Any] = {
        "rayVersion": settings.ray_version,
        "enableInTreeAutoscaling": autoscaling,
        "headGroupSpec": {
            # KubeRay's operator reads and writes Serve applications through the dashboard
            # (head Service, port "dashboard"): it must listen beyond localhost. The model's
            # NetworkPolicy admits only KubeRay's operator pods to it.
            "rayStartParams": {
                "dashboard-host": settings.dashboard_host,
                **_ray_metrics_param(),
            },
            "template": head_pod(model, settings),
        },
        "workerGroupSpecs": [_worker_group(model, p, settings) for p in rendered],
    }
    if autoscaling:
        # KubeRay adds its autoscaler as a sidecar of the head (``BuildAutoscalerContainer`` in
        # its common/pod.go), which reads and scales the RayCluster through the API with the
        # head's service account (KubeRay binds it a Role). Only that container gets the token:
        # the head pod mounts none, and ``autoscalerOptions.volumeMounts`` (appended by
        # KubeRay's ``mergeAutoscalerOverrides``) mounts the head's projected token into it.
        head = cluster["headGroupSpec"]["template"]["spec"]
        head["volumes"] = [*head.get("volumes", []), api_access_volume()]
        cluster["autoscalerOptions"] = {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": 120,
            # Hardened like ours.
            "securityContext": container_security_context(),
            "volumeMounts": [api_access_mount()],
        }
    return {
        "apiVersion": RAY_API_VERSION,
        "kind": "RayService",
        "metadata": dict(child_metadata(model, rayservice_name(model.name), owner)),
        "spec": {
            # KubeRay's serve Service (``<name>-serve-svc``) selects pods labelled
            # ``ray.io/serve=true``; KubeRay sets that label on the head from its proxy's health
            # unless this is true (``updateHeadPodServeLabel`` in rayservice_controller.go,
            # v1.6/v1.7). The head runs no replica and is sized for GCS and the controller:
            # requests enter through the workers' proxies only. Outside ``rayClusterConfig``,
            # so setting it starts no new cluster.
            "excludeHeadPodFromServeSvc": True,
            "serveConfigV2": yaml.safe_dump(serve_config(model, settings, pools), sort_keys=False),
            "rayClusterConfig": cluster,
        },
    }
