"""InferenceModel -> KubeRay RayServices (ray.io/v1), one per pool.

Each pool gets a RayService of its own (a head and the pool's worker group, one Serve
application at ``/``), named ``<model>-<pool>-<hash>`` and labelled with the model and the pool,
so that a pool fails, upgrades, scales and waits for capacity on its own: KubeRay counts a
RayService ready only when every application in it runs (``getAndCheckServeStatus``), switches
its ``<name>-serve-svc`` only then, and replaces the whole Ray cluster for any change of any
group. The gateway merges the pools again by the model's ``status.pools[].endpoint``. Each
worker advertises its pool's custom Ray resource once, and the pool's Serve deployment asks for
one unit per replica, so there is one replica per worker pod. The Serve config is built as data
and dumped to YAML (KubeRay takes ``serveConfigV2`` as a string).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from typing import Any

import yaml
from modelgrid_serving.config import IMPORT_PATH

from modelgrid_operator import api
from modelgrid_operator.ray_ports import RAY_METRICS_PORT
from modelgrid_operator.render.app_config import pool_resource, to_app_config
from modelgrid_operator.render.metadata import POOL_LABEL, Owner, child_metadata
from modelgrid_operator.render.pods import head_pod, worker_pod
from modelgrid_operator.render.security import (
    api_access_mount,
    api_access_volume,
    container_security_context,
)
from modelgrid_operator.render.upgrade import upgrade_strategy
from modelgrid_operator.settings import RenderSettings

RAY_API_VERSION = "ray.io/v1"
MAX_RAYSERVICE_NAME = 47
"""KubeRay's ``MaxRayServiceNameLength`` (``ValidateRayServiceMetadata``): its RayClusters add a
6-character suffix to the name, and Services derive from it."""
NAME_HASH_LENGTH = 5


def rayservice_name(model_name: str, pool_name: str) -> str:
    """The RayService of one pool: ``<model>-<pool>-<5 hex>``, at most 47 characters.

    The hash is of the model and pool names together, so two pools whose names are cut to the
    same prefix still get two names, and ``a-b`` / pool ``c`` never meets ``a`` / pool ``b-c``.
    The model name starts with a letter and the hash ends in one or a digit: a DNS-1035 label.
    """
    digest = hashlib.sha256(f"{model_name}/{pool_name}".encode()).hexdigest()[:NAME_HASH_LENGTH]
    stem = f"{model_name}-{pool_name}"[: MAX_RAYSERVICE_NAME - NAME_HASH_LENGTH - 1].rstrip("-")
    return f"{stem}-{digest}"


def application_name(model: api.InferenceModel, pool: api.Pool) -> str:
    """The pool's Serve application in its RayService: ``<model>-<pool>``, whatever the number
    of pools, so adding or removing a pool never renames (and so redeploys) another's."""
    return f"{model.name}-{pool.name}"


def serve_service_url(namespace: str, rayservice: str, settings: RenderSettings) -> str:
    """In-cluster URL of a RayService's serve Service (KubeRay's ``<rayservice>-serve-svc``)."""
    return f"http://{rayservice}-serve-svc.{namespace}.svc:{settings.serve_port}"


def pool_endpoint(model: api.InferenceModel, pool: api.Pool, settings: RenderSettings) -> str:
    """In-cluster base URL of a pool's application (its RayService's serve Service, no
    trailing slash): its OpenAI routes are ``<endpoint>/v1/...``."""
    return serve_service_url(model.namespace, rayservice_name(model.name, pool.name), settings)


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
    model: api.InferenceModel, pool: api.Pool, settings: RenderSettings
) -> dict[str, Any]:
    """The Serve config (``serveConfigV2``) of a pool's RayService, as data: one application."""
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": settings.serve_port},
        "applications": [
            {
                "name": application_name(model, pool),
                "route_prefix": "/",
                "import_path": IMPORT_PATH,
                "args": to_app_config(model, pool, settings).model_dump(mode="json"),
            }
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
    pool: api.Pool,
    *,
    settings: RenderSettings,
    owner: Owner | None = None,
) -> dict[str, Any]:
    """Render the RayService that serves one pool of ``model``.

    Args:
        model: a validated InferenceModel.
        pool: one of its pools.
        settings: images and cluster conventions.
        owner: the model's name and uid; when given, the RayService is owned by the model so
            Kubernetes deletes it with the model.

    Returns:
        The RayService as a plain dict, ready to apply.
    """
    metadata = child_metadata(model, rayservice_name(model.name, pool.name), owner)
    metadata["labels"][POOL_LABEL] = pool.name
    return {
        "apiVersion": RAY_API_VERSION,
        "kind": "RayService",
        "metadata": dict(metadata),
        "spec": _rayservice_spec(model, pool, settings),
    }


def _rayservice_spec(
    model: api.InferenceModel, pool: api.Pool, settings: RenderSettings
) -> dict[str, Any]:
    """The RayService's spec: how KubeRay upgrades and exposes it (fields outside
    ``rayClusterConfig``, which KubeRay changes in place), the Serve applications, the cluster."""
    return {
        # Said, never defaulted: KubeRay's default (zero-downtime) would start a whole second
        # cluster for any cluster change, however many GPUs that takes (render/upgrade.py).
        # Outside ``rayClusterConfig``, so changing it starts no new cluster.
        "upgradeStrategy": upgrade_strategy(model, pool, settings),
        # KubeRay's serve Service (``<name>-serve-svc``) selects pods labelled
        # ``ray.io/serve=true``; KubeRay sets that label on the head from its proxy's health
        # unless this is true (``updateHeadPodServeLabel`` in rayservice_controller.go,
        # v1.6/v1.7). The head runs no replica and is sized for GCS and the controller:
        # requests enter through the pool's workers' proxies only. Outside
        # ``rayClusterConfig``, so setting it starts no new cluster.
        "excludeHeadPodFromServeSvc": True,
        "serveConfigV2": yaml.safe_dump(serve_config(model, pool, settings), sort_keys=False),
        "rayClusterConfig": _ray_cluster(model, pool, settings),
    }


def _ray_cluster(
    model: api.InferenceModel, pool: api.Pool, settings: RenderSettings
) -> dict[str, Any]:
    """The pool's Ray cluster: a head for GCS and the Serve controller, one worker group for
    the pool's replicas, and KubeRay's autoscaler where the pool's replica bounds differ."""
    low, high = pool.replica_bounds
    autoscaling = low != high
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
            "template": head_pod(model, pool, settings),
        },
        "workerGroupSpecs": [_worker_group(model, pool, settings)],
    }
    if autoscaling:
        _add_autoscaler(cluster)
    return cluster


def _add_autoscaler(cluster: dict[str, Any]) -> None:
    """Give ``cluster`` KubeRay's autoscaler, with the API access it needs and no more.

    KubeRay adds its autoscaler as a sidecar of the head (``BuildAutoscalerContainer`` in its
    common/pod.go), which reads and scales the RayCluster through the API with the head's
    service account (KubeRay binds it a Role). Only that container gets the token: the head pod
    mounts none, and ``autoscalerOptions.volumeMounts`` (appended by KubeRay's
    ``mergeAutoscalerOverrides``) mounts the head's projected token into it.
    """
    head = cluster["headGroupSpec"]["template"]["spec"]
    head["volumes"] = [*head.get("volumes", []), api_access_volume()]
    cluster["autoscalerOptions"] = {
        "upscalingMode": "Default",
        "idleTimeoutSeconds": 120,
        # Hardened like ours.
        "securityContext": container_security_context(),
        "volumeMounts": [api_access_mount()],
    }


def render_rayservices(
    model: api.InferenceModel,
    *,
    settings: RenderSettings,
    owner: Owner | None = None,
    pools: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """The RayServices of ``model``, one per pool, in spec order.

    Args:
        model: a validated InferenceModel.
        settings: images and cluster conventions.
        owner: the model's name and uid (see :func:`render_rayservice`).
        pools: names of the pools to render (default: all); a pool left out (refused by the
            memory admission) gets no RayService.
    """
    return [
        render_rayservice(model, p, settings=settings, owner=owner)
        for p in model.spec.pools
        if pools is None or p.name in pools
    ]
