"""The catalog: each source's models and keys replace that source's alone; every change swaps in
a new table, told to the listeners; a backend the probe finds down leaves the table; a keys
source that would repeat another's name is refused and the previous keys stay."""

from __future__ import annotations

import pytest
from modelgrid_serving.gateway.auth import KeyPolicy, hash_key
from modelgrid_serving.gateway.catalog import Catalog, backend_urls
from modelgrid_serving.gateway.config import KeyConfig
from modelgrid_serving.gateway.routing import Backend, ModelEntry, RoutingTable

pytestmark = pytest.mark.unit

A = Backend(url="http://a:8000/v1", pool="nvidia")
B = Backend(url="http://b:8000/v1", pool="apple")


def _entry(name: str, *backends: Backend) -> ModelEntry:
    return ModelEntry(name=name, backends=backends, created=1)


def _catalog() -> tuple[Catalog, list[RoutingTable]]:
    told: list[RoutingTable] = []
    return Catalog(auth_enabled=True, max_concurrent_per_key=4, listeners=(told.append,)), told


def test_catalog_replaces_one_sources_models_and_tells_each_new_table() -> None:
    catalog, told = _catalog()
    catalog.pending_sources.update({"kubernetes:a", "kubernetes:b"})
    catalog.set_entries("kubernetes:a", [_entry("llama", A)])
    catalog.set_entries("kubernetes:b", [_entry("qwen", B)])
    catalog.set_entries("kubernetes:a", [])
    assert list(catalog.table.models) == ["qwen"]
    assert catalog.pending_sources == set()
    assert [list(t.models) for t in told] == [["llama"], ["llama", "qwen"], ["qwen"]]
    assert told[-1] is catalog.table
    assert backend_urls(catalog.table) == {B.url}


def test_catalog_takes_a_down_backend_out_until_it_is_up() -> None:
    catalog, _ = _catalog()
    catalog.set_entries("static", [_entry("llama", A, B)])
    catalog.set_down(frozenset({A.url}))
    assert catalog.table.routes["llama"].backends == (B,)
    catalog.set_down(frozenset())
    assert catalog.table.routes["llama"].backends == (A, B)


def test_catalog_refuses_keys_that_repeat_another_sources_name() -> None:
    catalog, _ = _catalog()
    catalog.set_keys("inline", [KeyConfig(name="ci", sha256=hash_key("one"))])
    catalog.set_keys("secret", [KeyConfig(name="ci", sha256=hash_key("two"))])  # logged
    assert len(catalog.keys) == 1
    assert catalog.keys.authenticate(b"Bearer one").name == "ci"
    with pytest.raises(ValueError, match="ci"):
        catalog.set_keys("file", [KeyConfig(name="ci", sha256=hash_key("3"))], strict=True)


def test_catalog_computes_what_a_key_may_use_per_table() -> None:
    catalog, _ = _catalog()
    catalog.set_entries("static", [_entry("llama", A), _entry("qwen", B)])
    policy = KeyPolicy(name="team", models=frozenset({"qwen"}))
    assert list(catalog.allowed_for(policy) or {}) == ["qwen"]
    assert catalog.allowed_for(KeyPolicy(name="all")) is None
    catalog.set_entries("static", [_entry("llama", A)])  # a new table: computed again
    assert catalog.allowed_for(policy) == {}
