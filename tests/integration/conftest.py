"""Fixtures every integration tier shares: OpenAI's published API description as a validator
(the local stacks are in ``tests/conftest.py``, shared with the e2e tier).

The description is read from the shared folder beside the repository (it is not part of the
project); without it, the schema checks skip and say where they looked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

OPENAPI = Path(__file__).resolve().parents[2] / ".." / "shared" / "openai-openapi" / "openapi.yaml"


@pytest.fixture(scope="session")
def openai_spec() -> dict[str, Any]:
    """OpenAI's published API description."""
    if not OPENAPI.is_file():
        pytest.skip(f"OpenAI's API description not found at {OPENAPI}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with OPENAPI.open() as f:
        return yaml.load(f, Loader=loader)


@pytest.fixture(scope="session")
def check_schema(openai_spec: dict[str, Any]) -> Callable[[str, Any], None]:
    """``check_schema(name, instance)``: validate against ``#/components/schemas/<name>``."""
    from jsonschema import Draft202012Validator

    components = _nullable_to_null(openai_spec["components"])
    validators: dict[str, Draft202012Validator] = {}

    def check(name: str, instance: Any) -> None:
        if name not in validators:
            schema = {"$ref": f"#/components/schemas/{name}", "components": components}
            validators[name] = Draft202012Validator(schema)
        errors = sorted(validators[name].iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, f"{name}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:5]
        )

    return check


def _nullable_to_null(node: Any) -> Any:
    """The description says OpenAPI 3.1 but still marks some fields 3.0-style with
    ``nullable: true``; JSON Schema ignores that keyword, so spell it as ``anyOf [.., null]``."""
    if isinstance(node, list):
        return [_nullable_to_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_null(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted
