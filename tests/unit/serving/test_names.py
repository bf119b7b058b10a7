"""Served names: aliases resolve to the canonical name; unknown names are a 404."""

from __future__ import annotations

import pytest
from modelgrid_serving.errors import InvalidRequest, ModelNotFound
from modelgrid_serving.names import ServedNames

pytestmark = pytest.mark.unit


def make_names() -> ServedNames:
    return ServedNames.build([("llama", ("chat", "default")), ("qwen", ())])


@pytest.mark.parametrize(
    ("requested", "canonical"),
    [("llama", "llama"), ("chat", "llama"), ("default", "llama"), ("qwen", "qwen")],
)
def test_resolve_alias_to_canonical(requested: str, canonical: str) -> None:
    assert make_names().resolve(requested) == canonical


def test_resolve_unknown_is_model_not_found() -> None:
    with pytest.raises(ModelNotFound) as info:
        make_names().resolve("gpt-4")
    assert info.value.param == "model"


@pytest.mark.parametrize("requested", [None, "", 3, ["llama"]])
def test_resolve_missing_or_wrong_type_is_invalid(requested: object) -> None:
    with pytest.raises(InvalidRequest) as info:
        make_names().resolve(requested)
    assert info.value.param == "model"


def test_build_rejects_an_alias_claimed_twice() -> None:
    with pytest.raises(ValueError, match="chat"):
        ServedNames.build([("a", ("chat",)), ("b", ("chat",))])


def test_names_lists_canonical_then_aliases() -> None:
    assert make_names().names() == ("llama", "chat", "default", "qwen")
