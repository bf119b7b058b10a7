"""Names, labels and owner references shared by every child object."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from modelgrid_operator import api

MANAGED_BY = "modelgrid-operator"
MODEL_LABEL = f"{api.GROUP}/model"
POOL_LABEL = f"{api.GROUP}/pool"
ACCELERATOR_LABEL = f"{api.GROUP}/accelerator"


class Owner(TypedDict):
    """The parts of an InferenceModel an owner reference needs."""

    name: str
    uid: str


class OwnerReference(TypedDict):
    """A metav1.OwnerReference."""

    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict):
    """The metadata renderers set on a child."""

    name: str
    namespace: str
    labels: dict[str, str]
    ownerReferences: NotRequired[list[OwnerReference]]


def owner_of(body: dict[str, Any]) -> Owner:
    """The owner fields of an InferenceModel as the API server returned it."""
    return Owner(name=body["metadata"]["name"], uid=body["metadata"]["uid"])


def model_labels(model: api.InferenceModel) -> dict[str, str]:
    """Labels every child of a model carries; the operator selects children by them."""
    return {
        "app.kubernetes.io/name": "modelgrid",
        "app.kubernetes.io/instance": model.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MODEL_LABEL: model.name,
    }


def child_metadata(model: api.InferenceModel, name: str, owner: Owner | None) -> ObjectMeta:
    """Metadata of a child object, owned by the model when its uid is known."""
    meta = ObjectMeta(name=name, namespace=model.namespace, labels=model_labels(model))
    if owner is not None:
        meta["ownerReferences"] = [
            OwnerReference(
                apiVersion=api.API_VERSION,
                kind=api.KIND,
                name=owner["name"],
                uid=owner["uid"],
                controller=True,
                blockOwnerDeletion=True,
            )
        ]
    return meta
