"""A model's rendered RayServices (one per pool) seen the ways tests look at them: by pool, as
all worker groups, as all Serve applications."""

from __future__ import annotations

from typing import Any

import yaml
from modelgrid_operator import api
from modelgrid_operator.render import Owner, render_rayservice, render_rayservices
from modelgrid_operator.settings import RenderSettings


def pool_rayservice(
    model: api.InferenceModel,
    pool: str | None = None,
    *,
    settings: RenderSettings | None = None,
    owner: Owner | None = None,
) -> dict[str, Any]:
    """The RayService of the pool named ``pool`` (default: the model's first pool)."""
    chosen = next(p for p in model.spec.pools if pool is None or p.name == pool)
    return render_rayservice(model, chosen, settings=settings or RenderSettings(), owner=owner)


def worker_groups(
    model: api.InferenceModel, settings: RenderSettings | None = None
) -> dict[str, dict[str, Any]]:
    """Pool name -> its worker group, over every RayService of the model."""
    return {
        g["groupName"]: g
        for rs in render_rayservices(model, settings=settings or RenderSettings())
        for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    }


def applications(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    """The Serve applications of one RayService."""
    return yaml.safe_load(rayservice["spec"]["serveConfigV2"])["applications"]
