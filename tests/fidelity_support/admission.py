"""What the API server does with a custom object on create, in the order it does it.

1. prune fields the schema does not know (they vanish, no error);
2. apply the schema's defaults;
3. validate the OpenAPI schema (types, enums, bounds, patterns, required) and list-type
   uniqueness;
4. evaluate the ``x-kubernetes-validations`` CEL rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fidelity_support.cel import rule_failures
from fidelity_support.openapi import Schema, apply_defaults, list_errors, prune, schema_errors


@dataclass
class Admission:
    """The outcome of creating one object."""

    stored: Any
    """The object as it would be stored (pruned and defaulted)."""
    pruned: list[str] = field(default_factory=list)
    """YAML paths of fields that were dropped."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(YAML path, message) of every rejection: schema, duplicates and CEL rules."""

    @property
    def accepted(self) -> bool:
        """Whether the API server would store the object."""
        return not self.errors

    def messages_at(self, path: str) -> list[str]:
        """The messages reported at one path."""
        return [message for where, message in self.errors if where == path]


def crd_schema(crd: dict[str, Any], version: str | None = None) -> Schema:
    """The ``openAPIV3Schema`` of one version of a CRD (the storage version by default)."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version or (version is None and entry.get("storage")):
            return entry["schema"]["openAPIV3Schema"]
    raise KeyError(f"{crd['metadata']['name']} has no version {version!r}")


def admit(document: dict[str, Any], schema: Schema) -> Admission:
    """Create ``document`` against ``schema`` as the API server would."""
    pruned, dropped = prune(document, schema)
    stored = apply_defaults(pruned, schema)
    errors = schema_errors(stored, schema) + list_errors(stored, schema)
    errors += [(f.path, f.message) for f in rule_failures(stored, schema)]
    return Admission(stored=stored, pruned=dropped, errors=errors)
