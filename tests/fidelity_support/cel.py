"""A CRD's ``x-kubernetes-validations`` rules, evaluated with a real CEL implementation.

The API server evaluates each rule with ``self`` bound to the node that declares it, on the
object after pruning and defaulting, and reports a failure at the node's path plus the rule's
``fieldPath``. Transition rules (those that read ``oldSelf``) only run on updates: on create
they are skipped here as there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import celpy

from fidelity_support.openapi import Schema, yaml_path


@dataclass(frozen=True)
class RuleFailure:
    """A rule that did not hold: where the API server reports it, and what it says."""

    path: str
    message: str
    rule: str


@lru_cache(maxsize=None)
def compile_rule(rule: str) -> celpy.Runner:
    """Compile one rule; raises ``celpy.CELParseError`` when it is not CEL."""
    env = celpy.Environment()
    return env.program(env.compile(rule))


def evaluate(rule: str, value: Any) -> bool | str:
    """The rule's result with ``self = value``: True, False, or the evaluation error's text."""
    try:
        result = compile_rule(rule).evaluate({"self": celpy.json_to_cel(value)})
    except celpy.CELEvalError as exc:
        return str(exc)
    if isinstance(result, celpy.CELEvalError):
        return str(result)
    return bool(result)


def _rules(node: Schema) -> Iterator[dict[str, str]]:
    for rule in node.get("x-kubernetes-validations", []):
        if "oldSelf" not in rule["rule"]:
            yield rule


def rule_failures(document: Any, node: Schema, path: tuple[Any, ...] = ()) -> list[RuleFailure]:
    """Every rule of ``node`` and its descendants that ``document`` breaks."""
    failures: list[RuleFailure] = []
    for rule in _rules(node):
        result = evaluate(rule["rule"], document)
        if result is not True:
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            if result is not False:
                message = f"{message} (evaluation error: {result})"
            where = yaml_path(path) + rule.get("fieldPath", "")
            failures.append(RuleFailure(where, message, rule["rule"]))
    if isinstance(document, dict):
        properties = node.get("properties") or {}
        additional = node.get("additionalProperties")
        for key, value in document.items():
            child = properties.get(key) if key in properties else (
                additional if isinstance(additional, dict) else None)
            if child is not None:
                failures += rule_failures(value, child, (*path, key))
    elif isinstance(document, list) and isinstance(node.get("items"), dict):
        for index, value in enumerate(document):
            failures += rule_failures(value, node["items"], (*path, index))
    return failures
