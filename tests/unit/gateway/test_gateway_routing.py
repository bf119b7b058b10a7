"""The routing table: merged listing, aliases, 404 vs 503, merging of sources, conflicts."""

from __future__ import annotations

import json

import pytest
from modelgrid_serving.errors import InvalidRequest, ModelNotFound, ModelNotReady
from modelgrid_serving.gateway.routing import (
    Backend,
    ModelEntry,
    allowed_models,
    allowed_routes,
    build_table,
    filter_listing,
)
from modelgrid_serving.protocol.capabilities import Capability

pytestmark = pytest.mark.unit

A = Backend(url="http://a:8000/v1", pool="nvidia")
B = Backend(url="http://b:8000/v1", pool="apple")


def make_entry(
    name: str, *aliases: str, backends: tuple[Backend, ...] = (A,), **kw: object
) -> ModelEntry:
    return ModelEntry(name=name, aliases=aliases, backends=backends, created=1, **kw)  # type: ignore[arg-type]


def ids(listing: bytes) -> list[str]:
    return [card["id"] for card in json.loads(listing)["data"]]


def test_build_table_lists_every_name_and_alias_of_ready_models() -> None:
    table = build_table([make_entry("llama", "chat"), make_entry("qwen")])
    assert ids(table.listing) == ["llama", "chat", "qwen"]
    cards = {c["id"]: c for c in json.loads(table.listing)["data"]}
    assert cards["chat"]["root"] == "llama"
    assert "root" not in cards["llama"]
    qwen = cards["qwen"]
    everything = [c.value for c in Capability]  # its backend declares nothing
    assert qwen.pop("capabilities") == everything
    assert qwen.pop("pools") == [{"name": "nvidia", "capabilities": everything}]
    assert qwen == {"id": "qwen", "object": "model", "created": 1, "owned_by": "modelgrid"}


def test_build_table_leaves_not_ready_models_out_of_the_listing() -> None:
    table = build_table([make_entry("llama", backends=(Backend(url="http://a/v1", ready=False),))])
    assert ids(table.listing) == []
    assert "llama" in table.routes


@pytest.mark.parametrize(("requested", "model"), [("llama", "llama"), ("chat", "llama")])
def test_resolve_name_or_alias(requested: str, model: str) -> None:
    route = build_table([make_entry("llama", "chat")]).resolve(requested)
    assert route.model == model
    assert route.backends == (A,)


def test_resolve_unknown_model_is_404_model_not_found() -> None:
    with pytest.raises(ModelNotFound) as caught:
        build_table([make_entry("llama")]).resolve("gpt-4")
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"


def test_resolve_known_model_without_ready_backend_is_503_with_retry_after() -> None:
    table = build_table([make_entry("llama", backends=())])
    with pytest.raises(ModelNotReady) as caught:
        table.resolve("llama")
    assert caught.value.status_code == 503
    assert caught.value.headers["Retry-After"] == "5"


@pytest.mark.parametrize("requested", [None, "", 3, ["llama"]])
def test_resolve_missing_or_wrong_type_model_is_400(requested: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        build_table([make_entry("llama")]).resolve(requested)
    assert caught.value.param == "model"


def test_build_table_merges_entries_of_one_name_across_sources() -> None:
    table = build_table(
        [make_entry("llama", "chat", backends=(A,)), make_entry("llama", "fast", backends=(B,))]
    )
    assert table.resolve("fast").backends == (A, B)
    assert table.served_names("llama") == ("llama", "chat", "fast")


def test_build_table_drops_backends_the_probe_found_down() -> None:
    table = build_table([make_entry("llama", backends=(A, B))], down=frozenset({A.url}))
    assert table.resolve("llama").backends == (B,)


def test_build_table_first_claim_on_an_alias_wins_and_is_reported() -> None:
    table = build_table([make_entry("llama", "chat"), make_entry("qwen", "chat")])
    assert table.resolve("chat").model == "llama"
    assert len(table.conflicts) == 1


def test_build_table_alias_never_shadows_a_model_name() -> None:
    table = build_table([make_entry("llama", "qwen"), make_entry("qwen")])
    assert table.resolve("qwen").model == "qwen"


def test_filter_listing_keeps_allowed_models_under_every_name() -> None:
    table = build_table([make_entry("llama", "chat"), make_entry("qwen")])
    assert allowed_models(table, ["chat"]) == {"llama"}
    assert ids(filter_listing(table, allowed_routes(table, ["chat"], None))) == ["llama", "chat"]


def test_cards_are_precomputed_per_served_name() -> None:
    table = build_table([make_entry("llama", "chat")])
    assert json.loads(table.cards["chat"])["root"] == "llama"
