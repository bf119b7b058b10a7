"""A CRD's OpenAPI v3 schema, applied the way the API server applies it.

The API server prunes unknown fields (it does not reject them), applies ``default``s, then
validates types, enums, bounds, patterns and required fields. :func:`to_json_schema` turns a
CRD schema node into a JSON Schema for ``jsonschema``'s Draft 4 validator, whose boolean
``exclusiveMinimum``/``exclusiveMaximum`` are OpenAPI 3.0's. With ``strict=True`` every object
that the API server would prune also rejects unknown fields: our tests want a misspelled
field to fail, where a cluster would drop it without a word.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
from modelgrid_operator.validation import yaml_path

Schema = dict[str, Any]

_COPIED = (
    "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
    "maxLength", "pattern", "minItems", "maxItems", "required", "minProperties",
    "maxProperties", "multipleOf", "uniqueItems",
)


def preserves_unknown(node: Schema) -> bool:
    """Whether the API server keeps fields this node does not name."""
    return bool(node.get("x-kubernetes-preserve-unknown-fields"))


def to_json_schema(node: Schema, *, strict: bool = False, root: bool = True) -> Schema:
    """One CRD schema node as JSON Schema (Draft 4).

    Args:
        node: an ``openAPIV3Schema`` node.
        strict: reject fields that the API server would prune.
        root: whether ``node`` is the object's root (its ``metadata`` is ObjectMeta, checked
            by the API server itself, never pruned by the schema).
    """
    out: Schema = {key: node[key] for key in _COPIED if key in node}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    elif "type" in node:
        out["type"] = [node["type"], "null"] if node.get("nullable") else node["type"]
    if "properties" in node:
        out["properties"] = {
            key: to_json_schema(child, strict=strict, root=False)
            for key, child in node["properties"].items()
        }
        if root and "metadata" in out["properties"]:
            out["properties"]["metadata"] = {"type": "object"}
    if isinstance(node.get("items"), dict):
        out["items"] = to_json_schema(node["items"], strict=strict, root=False)
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = to_json_schema(additional, strict=strict, root=False)
    elif additional is True:
        out["additionalProperties"] = True
    elif strict and node.get("type") == "object" and not preserves_unknown(node):
        out["additionalProperties"] = False
    for junctor in ("allOf", "anyOf", "oneOf"):
        if junctor in node:
            out[junctor] = [to_json_schema(n, strict=strict, root=False) for n in node[junctor]]
    if "not" in node:
        out["not"] = to_json_schema(node["not"], strict=strict, root=False)
    return out


def schema_errors(document: Any, schema: Schema, *, strict: bool = False) -> list[tuple[str, str]]:
    """Every schema violation of ``document`` as (YAML path, message), sorted."""
    validator = jsonschema.Draft4Validator(to_json_schema(schema, strict=strict))
    return sorted(
        (yaml_path(error.absolute_path), error.message)
        for error in validator.iter_errors(document)
    )


def prune(document: Any, node: Schema, path: tuple[Any, ...] = (), *,
          root: bool = True) -> tuple[Any, list[str]]:
    """Drop the fields the schema does not know, as the API server does. ``null`` values of
    fields that are not ``nullable`` are dropped as well (not reported: that is no typo).

    Returns:
        The pruned copy and the YAML paths of the dropped fields.
    """
    dropped: list[str] = []
    if isinstance(document, dict) and node.get("type", "object") == "object":
        properties = node.get("properties")
        additional = node.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, value in document.items():
            if root and key in ("apiVersion", "kind", "metadata"):
                out[key] = copy.deepcopy(value)
            elif value is None and not _nullable(properties, additional, key):
                continue  # nulls of non-nullable fields are dropped before defaulting
            elif properties is not None and key in properties:
                out[key], more = prune(value, properties[key], (*path, key), root=False)
                dropped += more
            elif isinstance(additional, dict):
                out[key], more = prune(value, additional, (*path, key), root=False)
                dropped += more
            elif additional is True or preserves_unknown(node):
                out[key] = copy.deepcopy(value)
            else:
                dropped.append(yaml_path((*path, key)))
        return out, dropped
    if isinstance(document, list) and isinstance(node.get("items"), dict):
        items = []
        for index, value in enumerate(document):
            item, more = prune(value, node["items"], (*path, index), root=False)
            items.append(item)
            dropped += more
        return items, dropped
    return copy.deepcopy(document), dropped


def _nullable(properties: Schema | None, additional: Any, key: str) -> bool:
    child = (properties or {}).get(key, additional if isinstance(additional, dict) else {})
    return bool(child.get("nullable"))


def apply_defaults(document: Any, node: Schema) -> Any:
    """A copy of ``document`` with the schema's ``default``s filled in, nested ones too."""
    document = copy.deepcopy(document)
    _default_in_place(document, node)
    return document


def _default_in_place(document: Any, node: Schema) -> None:
    if isinstance(document, dict):
        for key, child in (node.get("properties") or {}).items():
            if key not in document and "default" in child:
                document[key] = copy.deepcopy(child["default"])
            if key in document:
                _default_in_place(document[key], child)
        additional = node.get("additionalProperties")
        if isinstance(additional, dict):
            for value in document.values():
                _default_in_place(value, additional)
    elif isinstance(document, list) and isinstance(node.get("items"), dict):
        for value in document:
            _default_in_place(value, node["items"])


def list_errors(document: Any, node: Schema, path: tuple[Any, ...] = ()) -> list[tuple[str, str]]:
    """Duplicates in ``x-kubernetes-list-type`` ``set`` and ``map`` lists (the API server's
    "Duplicate value" errors), as (YAML path of the duplicate, message)."""
    errors: list[tuple[str, str]] = []
    if isinstance(document, dict):
        for key, value in document.items():
            child = (node.get("properties") or {}).get(key)
            if child is None and isinstance(node.get("additionalProperties"), dict):
                child = node["additionalProperties"]
            if child is not None:
                errors += list_errors(value, child, (*path, key))
    elif isinstance(document, list):
        list_type = node.get("x-kubernetes-list-type")
        keys = node.get("x-kubernetes-list-map-keys", [])
        seen: list[Any] = []
        for index, value in enumerate(document):
            if list_type == "set":
                identity = value
            elif list_type == "map" and isinstance(value, dict):
                identity = {k: value.get(k) for k in keys}
            else:
                identity = None
            if identity is not None and identity in seen:
                errors.append((yaml_path((*path, index)), f"Duplicate value: {identity!r}"))
            seen.append(identity)
            if isinstance(node.get("items"), dict):
                errors += list_errors(value, node["items"], (*path, index))
    return errors
