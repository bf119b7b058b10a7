"""Fixtures every integration tier shares: OpenAI's published API description as a validator,
the tiny model, and the local stacks (real Ray Serve + vLLM CPU or MLX CPU, each kind started
once a session).

The description is read from the shared folder beside the repository (it is not part of the
project); without it, the schema checks skip and say where they looked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_stack import Stack, Stacks, tiny_model_dir

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


# ---- the local stack (tests/local_stack.py) ---------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The tiny model (generated once, cached between sessions)."""
    return tiny_model_dir()


@pytest.fixture(scope="session")
def stacks(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    """The session's stacks; on teardown, fails if one crashed or left a process behind."""
    manager = Stacks(tiny_model, tmp_path_factory.mktemp("stacks"))
    try:
        yield manager
    finally:
        manager.stop()
    assert not manager.problems, "; ".join(manager.problems)


@pytest.fixture
def stack(stacks: Stacks) -> Stack:
    """The chat stack: the tiny model as a generative model, with an alias."""
    return stacks.get("chat")


@pytest.fixture
def embedding_stack(stacks: Stacks) -> Stack:
    """The tiny model served as an embedding model."""
    return stacks.get("embed")


@pytest.fixture
def mlx_stack(stacks: Stacks) -> Stack:
    """The chat stack's model, name and alias on the MLX engine (an Apple pool run on CPU)."""
    return stacks.get("mlx")


@pytest.fixture
def mlx_pools_stack(stacks: Stacks) -> Stack:
    """One model in two MLX pools: two Serve applications, at ``/pools/mac-a`` and ``/pools/mac-b``."""
    return stacks.get("mlx-pools")


def stack_order(item: pytest.Item) -> int:
    """Which stack a test needs, as a sort key: the MLX ones first (seconds to start), then the
    vLLM chat stack, then the embedding stack; so each kind starts once a session."""
    fixtures = getattr(item, "fixturenames", ())
    callspec = getattr(item, "callspec", None)
    if "mlx_pools_stack" in fixtures:
        return 0
    if "mlx_stack" in fixtures or (callspec and callspec.params.get("engine") == "mlx"):
        return 1
    return 3 if "embedding_stack" in fixtures else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order tests by the stack they use (a stable sort: file order otherwise)."""
    items.sort(key=stack_order)
