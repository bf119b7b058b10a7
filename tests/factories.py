"""Test objects built from one valid default, changed one field at a time (KubeRay-style)."""

from __future__ import annotations

import copy
from typing import Any

from modelgrid_operator import api


def model_doc(**spec_overrides: Any) -> dict[str, Any]:
    """A valid InferenceModel document; keyword arguments replace top-level spec fields."""
    doc: dict[str, Any] = {
        "apiVersion": "modelgrid.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": "demo", "namespace": "ml"},
        "spec": {
            "model": {"uri": "hf://org/demo-1b"},
            "pools": [{"name": "gpu", "accelerator": "nvidia", "minReplicas": 1}],
        },
    }
    doc["spec"].update(copy.deepcopy(spec_overrides))
    return doc


def pool(name: str = "gpu", accelerator: str = "nvidia", **fields: Any) -> dict[str, Any]:
    """One pool entry."""
    return {"name": name, "accelerator": accelerator, **fields}


def make_model(**spec_overrides: Any) -> api.InferenceModel:
    """A validated InferenceModel; see :func:`model_doc`."""
    return api.InferenceModel.model_validate(model_doc(**spec_overrides))
