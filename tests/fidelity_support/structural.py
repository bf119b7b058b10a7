"""The API server's rules for a CRD's ``openAPIV3Schema``, checked by code.

Follows apiextensions-apiserver's validation of ``apiextensions.k8s.io/v1`` schemas (a
*structural* schema plus the checks on extensions, defaults and CEL rules):

- every node has a ``type`` (or ``x-kubernetes-int-or-string``, or preserves unknown fields);
  arrays have ``items``, ``properties`` only on objects, never with ``additionalProperties``;
- keywords Kubernetes does not support: ``$ref``, ``$schema``, ``id``, ``definitions``,
  ``dependencies``, ``patternProperties``, ``additionalItems``, ``uniqueItems: true``,
  ``additionalProperties: false``, a list of ``items``;
- ``allOf``/``anyOf``/``oneOf``/``not`` only restrict values: no types (except the
  ``anyOf: [{type: integer}, {type: string}]`` of an int-or-string), defaults, descriptions,
  nullable or ``x-kubernetes-*`` inside them, and only properties the node has;
- ``x-kubernetes-list-type`` on arrays only; ``map`` lists hold objects whose
  ``x-kubernetes-list-map-keys`` are scalar properties that are required or defaulted;
  ``set`` lists hold scalars; ``x-kubernetes-map-type`` on objects only;
- the root is an object; root ``metadata`` may only restrict ``name`` and ``generateName``;
  no default under ``metadata``; every default validates against its own node after pruning;
- patterns compile as RE2 (Go's regexp); formats are ones Kubernetes knows;
- every CEL rule compiles, and its ``fieldPath`` names a property of its node.

:func:`violations` returns human-readable findings; an empty list means the API server would
accept the schema as far as these rules go.
"""

from __future__ import annotations

from typing import Any

import celpy
import re2

from fidelity_support.cel import compile_rule
from fidelity_support.openapi import Schema, prune, schema_errors

TYPES = {"object", "array", "string", "integer", "number", "boolean"}
SCALARS = {"string", "integer", "number", "boolean"}
FORBIDDEN = ("$ref", "$schema", "id", "definitions", "dependencies", "patternProperties",
             "additionalItems")
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
NOT_IN_JUNCTORS = ("type", "default", "description", "nullable", "additionalProperties",
                   "items", "title")
FORMATS = {
    "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uuid",
    "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13", "creditcard", "ssn", "hexcolor",
    "rgbcolor", "byte", "password", "date", "duration", "datetime", "date-time", "int32",
    "int64", "float", "double",
}
"""Formats the API server validates (k8s.io/kube-openapi strfmt, plus OpenAPI's numeric ones);
others draw a warning and are ignored."""
ROOT_METADATA_FIELDS = {"name", "generateName"}
INT_OR_STRING = ({"type": "integer"}, {"type": "string"})


def violations(schema: Schema) -> list[str]:
    """Every finding in a CRD version's ``openAPIV3Schema``, as ``path: problem``."""
    found: list[str] = []
    if schema.get("type") != "object":
        found.append("<root>: type must be object")
    metadata = (schema.get("properties") or {}).get("metadata")
    if metadata is not None:
        found += _root_metadata(metadata)
    _node(schema, "", found, in_junctor=False)
    return found


def crd_violations(crd: dict[str, Any]) -> list[str]:
    """:func:`violations` for every version of a CRD, prefixed with the version name."""
    found = []
    for version in crd["spec"]["versions"]:
        schema = version.get("schema", {}).get("openAPIV3Schema")
        if schema is None:
            found.append(f"{version['name']}: no openAPIV3Schema (v1 CRDs need one)")
            continue
        found += [f"{version['name']}: {v}" for v in violations(schema)]
    return found


def _root_metadata(node: Schema) -> list[str]:
    found = []
    extra = set(node) - {"type", "properties", "description"}
    if node.get("type") != "object" or extra:
        found.append(f".metadata: only `type: object` and name/generateName may be set, got "
                     f"{sorted(node)}")
    for key, child in (node.get("properties") or {}).items():
        if key not in ROOT_METADATA_FIELDS:
            found.append(f".metadata.{key}: only name and generateName may be restricted")
        elif child.get("type") != "string" or "default" in child:
            found.append(f".metadata.{key}: must be a string without default")
    return found


def _node(node: Any, path: str, found: list[str], *, in_junctor: bool) -> None:
    where = path or "<root>"
    if not isinstance(node, dict):
        found.append(f"{where}: a schema must be a mapping, got {type(node).__name__}")
        return
    for key in FORBIDDEN:
        if key in node:
            found.append(f"{where}: {key} is not supported")
    if node.get("uniqueItems") is True:
        found.append(f"{where}: uniqueItems cannot be true (use x-kubernetes-list-type: set)")
    if node.get("additionalProperties") is False:
        found.append(f"{where}: additionalProperties cannot be false")
    if isinstance(node.get("items"), list):
        found.append(f"{where}: items must be a single schema, not a list")
    if in_junctor:
        for key in NOT_IN_JUNCTORS:
            if key in node:
                found.append(f"{where}: {key} must not be set inside allOf/anyOf/oneOf/not")
        for key in node:
            if key.startswith("x-kubernetes-"):
                found.append(f"{where}: {key} must not be set inside allOf/anyOf/oneOf/not")
    else:
        _types(node, where, found)
    _extensions(node, where, found)
    _values(node, where, found)
    for key, child in (node.get("properties") or {}).items():
        _node(child, f"{path}.{key}", found, in_junctor=in_junctor)
    if isinstance(node.get("items"), dict):
        _node(node["items"], f"{path}[*]", found, in_junctor=in_junctor)
    if isinstance(node.get("additionalProperties"), dict):
        _node(node["additionalProperties"], f"{path}{{*}}", found, in_junctor=in_junctor)
    for junctor in JUNCTORS:
        children = node.get(junctor, [])
        for child in [children] if isinstance(children, dict) else children:
            if isinstance(child, dict):
                unknown = set(child.get("properties") or {}) - set(node.get("properties") or {})
                if unknown:
                    found.append(f"{where}: {junctor} names properties the node lacks: "
                                 f"{sorted(unknown)}")
            if node.get("x-kubernetes-int-or-string") and child in INT_OR_STRING:
                continue  # the one typed pattern Kubernetes allows in a junctor
            _node(child, f"{path}<{junctor}>", found, in_junctor=True)


def _types(node: Schema, where: str, found: list[str]) -> None:
    kind = node.get("type")
    if node.get("x-kubernetes-int-or-string"):
        if kind is not None:
            found.append(f"{where}: x-kubernetes-int-or-string must not have a type")
    elif kind is None:
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            found.append(f"{where}: type is missing (not structural)")
    elif kind not in TYPES:
        found.append(f"{where}: unknown type {kind!r}")
    if kind == "array" and not isinstance(node.get("items"), dict):
        found.append(f"{where}: arrays must have items")
    if "items" in node and kind != "array":
        found.append(f"{where}: items only on arrays")
    if "properties" in node and kind != "object":
        found.append(f"{where}: properties only on objects")
    if "additionalProperties" in node and kind != "object":
        found.append(f"{where}: additionalProperties only on objects")
    if "properties" in node and isinstance(node.get("additionalProperties"), dict | bool):
        found.append(f"{where}: properties and additionalProperties are mutually exclusive")
    for key in node.get("required", []):
        if key not in (node.get("properties") or {}) and not node.get(
                "x-kubernetes-preserve-unknown-fields"):
            found.append(f"{where}: required field {key!r} is not a property")


def _extensions(node: Schema, where: str, found: list[str]) -> None:
    kind = node.get("type")
    if node.get("x-kubernetes-preserve-unknown-fields") is False:
        found.append(f"{where}: x-kubernetes-preserve-unknown-fields must be true or absent")
    if node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" in node:
        found.append(f"{where}: x-kubernetes-preserve-unknown-fields with additionalProperties")
    if node.get("x-kubernetes-embedded-resource") and kind != "object":
        found.append(f"{where}: x-kubernetes-embedded-resource needs type object")
    map_type = node.get("x-kubernetes-map-type")
    if map_type is not None and (kind != "object" or map_type not in ("granular", "atomic")):
        found.append(f"{where}: x-kubernetes-map-type {map_type!r} needs an object and "
                     "granular or atomic")
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    if keys is not None and list_type != "map":
        found.append(f"{where}: x-kubernetes-list-map-keys needs x-kubernetes-list-type map")
    if list_type is None:
        return
    if kind != "array":
        found.append(f"{where}: x-kubernetes-list-type only on arrays")
        return
    items = node.get("items") if isinstance(node.get("items"), dict) else {}
    if list_type == "set":
        if items.get("type") not in SCALARS and items.get("x-kubernetes-map-type") != "atomic" \
                and items.get("x-kubernetes-list-type") != "atomic":
            found.append(f"{where}: x-kubernetes-list-type set needs scalar (atomic) items")
    elif list_type == "map":
        if items.get("type") != "object":
            found.append(f"{where}: x-kubernetes-list-type map needs object items")
        if not keys:
            found.append(f"{where}: x-kubernetes-list-type map needs x-kubernetes-list-map-keys")
        for key in keys or []:
            prop = (items.get("properties") or {}).get(key)
            if prop is None:
                found.append(f"{where}: list map key {key!r} is not a property of the items")
                continue
            if prop.get("type") not in SCALARS:
                found.append(f"{where}: list map key {key!r} must be a scalar")
            if key not in items.get("required", []) and "default" not in prop:
                found.append(f"{where}: list map key {key!r} must be required or defaulted")
    elif list_type != "atomic":
        found.append(f"{where}: unknown x-kubernetes-list-type {list_type!r}")


def _values(node: Schema, where: str, found: list[str]) -> None:
    if "pattern" in node:
        try:
            re2.compile(node["pattern"])
        except re2.error as exc:
            found.append(f"{where}: pattern is not RE2: {exc}")
    if "format" in node and node["format"] not in FORMATS:
        found.append(f"{where}: unknown format {node['format']!r}")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node and not isinstance(node[key], bool):
            found.append(f"{where}: {key} must be a boolean in OpenAPI v3.0")
    if key_bound := [k for k in ("exclusiveMinimum", "exclusiveMaximum")
                     if node.get(k) is True and k.replace("exclusiveM", "m") not in node]:
        found.append(f"{where}: {key_bound[0]} without its bound")
    if "default" in node:
        pruned, dropped = prune(node["default"], node, root=False)
        if dropped:
            found.append(f"{where}: default has fields the schema prunes: {dropped}")
        for path, message in schema_errors(pruned, node):
            found.append(f"{where}: default does not validate at {path or '.'}: {message}")
    for rule in node.get("x-kubernetes-validations", []):
        if "rule" not in rule:
            found.append(f"{where}: x-kubernetes-validations entry without rule")
            continue
        try:
            compile_rule(rule["rule"])
        except celpy.CELParseError as exc:
            found.append(f"{where}: CEL rule does not compile: {rule['rule']!r}: "
                         f"{str(exc).splitlines()[0]}")
        field_path = rule.get("fieldPath")
        if field_path is not None:
            name = field_path.removeprefix(".").split(".")[0].split("[")[0]
            if not field_path.startswith(".") or name not in (node.get("properties") or {}):
                found.append(f"{where}: fieldPath {field_path!r} names no property of the node")
