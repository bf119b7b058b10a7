"""Generate the InferenceModel CustomResourceDefinition from the typed API.

pydantic's JSON Schema is close to, but not, a Kubernetes *structural* schema: it uses
``$ref``/``$defs``, ``anyOf`` for optional fields, ``title``s and numeric ``exclusiveMinimum``.
:func:`to_structural` turns it into what the API server accepts, and :func:`build_crd` adds
what only a CRD has: CEL rules (from :class:`~modelgrid_operator.api.Rule`), printer columns,
short names, categories and the status subresource. ``crds/`` holds the output; a test fails
when it is stale (``modelgrid crd > crds/modelgrid.io_inferencemodels.yaml`` refreshes it).
"""

from __future__ import annotations

from typing import Any

import yaml

from modelgrid_operator import api

CRD_FILE = f"{api.GROUP}_{api.PLURAL}.yaml"
"""File name of the generated CRD, as controller-gen names them."""

_KEEP = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "additionalProperties",
    "format",
}


def _rules_for(model: type[api._Object]) -> list[dict[str, str]]:
    rules = []
    for rule in model.rules:
        entry = {"rule": rule.cel, "message": rule.message}
        if rule.field:
            entry["fieldPath"] = f".{rule.field}"
        rules.append(entry)
    return rules


def _models_by_name() -> dict[str, type[api._Object]]:
    return {
        cls.__name__: cls
        for cls in vars(api).values()
        if isinstance(cls, type) and issubclass(cls, api._Object) and cls is not api._Object
    }


def to_structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one pydantic JSON Schema node into a structural OpenAPI v3 node.

    Args:
        schema: the node (may be a ``$ref``).
        defs: the ``$defs`` of the whole document, to inline references.

    Returns:
        A node with a ``type`` everywhere, no references and no ``anyOf`` of types.
    """
    if "$ref" in schema:
        return _from_ref(schema, defs)
    if "anyOf" in schema:
        return _from_any_of(schema, defs)
    return _from_plain(schema, defs)


def _from_ref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A reference to a model, inlined (structural schemas have no ``$ref``), with the model's
    CEL rules and the referring field's own description and default."""
    name = schema["$ref"].rsplit("/", 1)[-1]
    node = to_structural(defs[name], defs)
    model = _models_by_name().get(name)
    if model is not None and model.rules:
        node["x-kubernetes-validations"] = _rules_for(model)
    for key in ("description", "default"):
        if key in schema:
            node[key] = schema[key]
    return node


def _from_any_of(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """pydantic's ``anyOf`` for an optional field (``X | None``: the API server leaves an
    absent field out, so ``null`` is dropped) or a resource quantity (``int | str``, which
    Kubernetes spells ``x-kubernetes-int-or-string``); any other union has no structural form.

    Raises:
        ValueError: a union of several types other than a quantity.
    """
    variants = [v for v in schema["anyOf"] if v.get("type") != "null"]
    types = {v.get("type") for v in variants}
    if types == {"integer", "string"}:  # a resource quantity
        node = {"x-kubernetes-int-or-string": True}
    elif len(variants) == 1:
        node = to_structural(variants[0], defs)
    else:
        raise ValueError(f"cannot express anyOf {schema['anyOf']} structurally")
    for key in ("description", "default"):
        if key in schema and schema[key] is not None:
            node[key] = schema[key]
    return node


def _from_plain(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Any other node: the keys OpenAPI v3.0 knows (``_KEEP``) and Kubernetes' own
    ``x-kubernetes-*`` ones, children rewritten in turn, in the forms the API server wants."""
    node: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            node[key] = value
        elif key not in _KEEP:
            continue
        elif key == "properties":
            node[key] = {k: to_structural(v, defs) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            node[key] = to_structural(value, defs)
        elif key == "default" and (value is None or value == {} or value == []):
            continue  # empty defaults only add noise to stored objects
        elif key == "additionalProperties" and value is False:
            continue  # pruning drops unknown fields; structural schemas forbid `false` here
        elif key == "exclusiveMinimum" or key == "exclusiveMaximum":
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            node[bound] = value  # JSON Schema's numeric form -> OpenAPI v3.0's boolean form
            node[key] = True
        else:
            node[key] = value
    if "const" in schema:
        node.setdefault("type", "string")
        node["enum"] = [schema["const"]]
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
        node["type"] = "object"
    if "enum" in schema and "type" not in node:
        node["type"] = "string"
    return node


def _spec_schema() -> dict[str, Any]:
    doc = api.InferenceModelSpec.model_json_schema(by_alias=True, mode="validation")
    defs = doc.pop("$defs", {})
    node = to_structural(doc, defs)
    node["x-kubernetes-validations"] = _rules_for(api.InferenceModelSpec)
    node["properties"]["aliases"]["items"] = dict(api.ALIAS_ITEM_SCHEMA)
    return node


def _status_schema() -> dict[str, Any]:
    doc = api.InferenceModelStatus.model_json_schema(by_alias=True, mode="serialization")
    defs = doc.pop("$defs", {})
    node = to_structural(doc, defs)
    node.pop("required", None)  # the operator fills status piece by piece
    return node


PRINTER_COLUMNS = [
    {
        "name": "Model",
        "type": "string",
        "jsonPath": ".status.servedModelNames[0]",
        "description": "The served model name.",
    },
    {
        "name": "Engine",
        "type": "string",
        "jsonPath": ".spec.engine",
        "description": "vllm, mlx or auto.",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": ".status.replicas",
        "description": "Ready/desired replicas over all pools.",
    },
    {
        "name": "Phase",
        "type": "string",
        "jsonPath": ".status.phase",
        "description": "Pending, Scheduling, Loading, Ready, Degraded or Failed.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition object for InferenceModel."""
    root = {
        "type": "object",
        "description": (api.InferenceModel.__doc__ or "").strip(),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _spec_schema(),
            "status": _status_schema(),
        },
        "x-kubernetes-validations": _rules_for(api.InferenceModel),
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{api.PLURAL}.{api.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "modelgrid"},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": list(api.CATEGORIES),
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    """The CRD as the YAML committed under ``crds/``."""
    header = "# Generated by `modelgrid crd` from modelgrid_operator/api.py. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)
