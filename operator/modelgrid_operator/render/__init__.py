"""Pure renderers: an InferenceModel in, Kubernetes objects out.

Nothing in this package reads the environment, calls an API server or looks at the clock: the
same model and settings always give the same objects, so handlers only diff and apply, and
``modelgrid render`` shows exactly what the operator would write.
"""

from modelgrid_operator.render.app_config import to_app_config, to_local_run
from modelgrid_operator.render.metadata import Owner, owner_of
from modelgrid_operator.render.network_policy import render_network_policy
from modelgrid_operator.render.rayservice import (
    pool_endpoint,
    rayservice_name,
    render_rayservice,
    render_rayservices,
    serve_endpoint,
)

__all__ = [
    "Owner",
    "owner_of",
    "pool_endpoint",
    "rayservice_name",
    "render_network_policy",
    "render_rayservice",
    "render_rayservices",
    "serve_endpoint",
    "to_app_config",
    "to_local_run",
]
