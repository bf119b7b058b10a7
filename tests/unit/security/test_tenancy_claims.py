"""Tenancy: a served name belongs to the namespace that claimed it first; another namespace
serves it only when both sides opt in. The attacks are InferenceModels as a tenant writes them."""

from __future__ import annotations

from typing import Any

import pytest
from modelgrid_serving.claims import Claim, claim_of, lost_names, resolve

pytestmark = [pytest.mark.unit, pytest.mark.security]


def inference_model(
    namespace: str,
    name: str,
    *,
    created: str | None = "2026-12-01T10:00:00Z",
    served: str | None = None,
    aliases: list[str] | None = None,
    share: Any = None,
    status_names: list[str] | None = None,
) -> dict[str, Any]:
    """An InferenceModel as the API server returns it."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}"}
    if created is not None:
        meta["creationTimestamp"] = created
    spec: dict[str, Any] = {"model": {"uri": "org/model"}, "pools": [{"name": "gpu"}]}
    if served is not None:
        spec["servedModelName"] = served
    if aliases is not None:
        spec["aliases"] = aliases
    if share is not None:
        spec["shareNamesWith"] = share
    body: dict[str, Any] = {"metadata": meta, "spec": spec}
    if status_names is not None:
        body["status"] = {"servedModelNames": status_names}
    return body


OWNER = inference_model("team-a", "llama", served="llama-3-8b", aliases=["gpt-4o-mini"])


def test_tenancy_second_namespace_claiming_a_served_name_loses_it() -> None:
    thief = inference_model("team-b", "copy", created="2026-12-02T10:00:00Z", served="llama-3-8b")
    [lost] = lost_names(claim_of(thief), [claim_of(OWNER)])
    assert lost.name == "llama-3-8b"
    assert lost.owner.key == ("team-a", "llama")
    assert "namespace team-a" in lost.describe() and "team-a/llama" in lost.describe()
    assert lost_names(claim_of(OWNER), [claim_of(thief)]) == ()


def test_tenancy_alias_of_another_namespace_is_lost_too() -> None:
    thief = inference_model(
        "team-b", "mini", created="2026-12-02T10:00:00Z", aliases=["gpt-4o-mini"]
    )
    assert [n.name for n in lost_names(claim_of(thief), [claim_of(OWNER)])] == ["gpt-4o-mini"]


def test_tenancy_same_timestamp_is_broken_by_namespace_then_name() -> None:
    a = inference_model("team-a", "x", served="shared")
    b = inference_model("team-b", "x", served="shared")
    assert resolve([claim_of(b), claim_of(a)]) == {
        ("team-b", "x"): lost_names(claim_of(b), [claim_of(a)])
    }


def test_tenancy_claim_without_timestamp_never_comes_first() -> None:
    undated = inference_model("aaa", "x", created=None, served="llama-3-8b")
    assert [n.owner.namespace for n in lost_names(claim_of(undated), [claim_of(OWNER)])] == [
        "team-a"
    ]


def test_tenancy_forged_status_name_is_a_claim_that_loses() -> None:
    """A status written by hand cannot route a name past the claim check."""
    forged = inference_model(
        "team-b", "own", created="2026-12-02T10:00:00Z", status_names=["own", "llama-3-8b"]
    )
    assert [n.name for n in lost_names(claim_of(forged), [claim_of(OWNER)])] == ["llama-3-8b"]


def test_tenancy_models_of_one_namespace_share_their_names() -> None:
    apple = inference_model(
        "team-a", "llama-mac", created="2026-12-02T10:00:00Z", served="llama-3-8b"
    )
    assert resolve([claim_of(OWNER), claim_of(apple)]) == {}


@pytest.mark.parametrize(
    ("owner_share", "other_share", "shared"),
    [
        (["team-b"], ["team-a"], True),
        (None, ["team-a"], False),  # only the claimant opts in: no
        (["team-b"], None, False),  # only the owner opts in: no
        (["team-c"], ["team-a"], False),  # the owner shares with someone else
    ],
)
def test_tenancy_sharing_needs_both_sides(
    owner_share: list[str] | None, other_share: list[str] | None, shared: bool
) -> None:
    owner = inference_model("team-a", "llama", served="llama-3-8b", share=owner_share)
    other = inference_model(
        "team-b",
        "llama-mac",
        created="2026-12-02T10:00:00Z",
        served="llama-3-8b",
        share=other_share,
    )
    assert (resolve([claim_of(owner), claim_of(other)]) == {}) is shared


def test_tenancy_consent_comes_from_a_model_that_serves_the_name() -> None:
    """A model of the owner's namespace that does not declare the name cannot share it."""
    unrelated = inference_model("team-a", "other", served="other", share=["team-b"])
    other = inference_model(
        "team-b",
        "llama-mac",
        created="2026-12-02T10:00:00Z",
        served="llama-3-8b",
        share=["team-a"],
    )
    claims = [claim_of(OWNER), claim_of(unrelated), claim_of(other)]
    assert list(resolve(claims)) == [("team-b", "llama-mac")]


def test_tenancy_malformed_share_list_shares_nothing() -> None:
    owner = inference_model("team-a", "llama", served="llama-3-8b", share="team-b")
    other = inference_model(
        "team-b",
        "x",
        created="2026-12-02T10:00:00Z",
        served="llama-3-8b",
        share=["team-a", 7, "Team_A"],
    )
    assert claim_of(owner).share_with == frozenset()
    assert claim_of(other).share_with == frozenset({"team-a"})
    assert list(resolve([claim_of(owner), claim_of(other)])) == [("team-b", "x")]


def test_tenancy_owner_deleted_passes_the_name_to_the_next_claim() -> None:
    later = inference_model("team-b", "x", created="2026-12-02T10:00:00Z", served="llama-3-8b")
    assert resolve([claim_of(later)]) == {}


def test_tenancy_stale_claim_of_the_same_model_is_replaced() -> None:
    """The operator's index may still hold a model's previous claim: it is not a rival."""
    before = Claim("team-b", "x", frozenset({"llama-3-8b"}), created=0.0)
    now = claim_of(inference_model("team-b", "x", served="llama-3-8b"))
    assert lost_names(now, [before]) == ()
