"""Per-key limits shared between gateway processes: running totals, absorbing peers' use."""

from __future__ import annotations

import json
import time

import pytest
from modelgrid_serving.errors import RateLimited
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.auth import KeyPolicy, hash_key
from modelgrid_serving.gateway.config import GatewayConfig, PeersConfig
from modelgrid_serving.gateway.limits import RateLimiter
from modelgrid_serving.gateway.live import LiveFigures
from modelgrid_serving.gateway.peers import (
    PEER_SECRET_ENV,
    PEER_SECRET_FILE_ENV,
    USAGE_PATH,
    PeerSync,
    read_peer_secret,
)
from modelgrid_serving.gateway.state import GatewayState
from pydantic import ValidationError
from unit.gateway.test_gateway_asgi import call

pytestmark = pytest.mark.unit

POLICY = KeyPolicy(name="team", requests_per_minute=4, tokens_per_minute=1000)


def test_limiter_counts_what_it_admits_and_charges() -> None:
    limiter = RateLimiter()
    limiter.admit(POLICY, now=0)
    limiter.admit(POLICY, now=0)
    limiter.settle(POLICY, reserved=0, used=120, now=0)
    limiter.admit(KeyPolicy(name="free"), now=0)  # no limits: nothing to share
    assert limiter.consumed == {"team": [2, 120]}


def test_absorbed_use_counts_against_the_local_buckets() -> None:
    limiter = RateLimiter()
    limiter.admit(POLICY, now=0)
    limiter.absorb("team", 3, 0)  # a peer admitted three
    with pytest.raises(RateLimited):
        limiter.admit(POLICY, now=0)
    fresh = RateLimiter()  # owed before this process ever saw the key
    fresh.absorb("team", 0, 1000)
    with pytest.raises(RateLimited) as caught:
        fresh.admit(POLICY, now=0)
    assert caught.value.type == "tokens"
    assert fresh.consumed == {}  # what peers used is not re-shared as our own


def test_merge_takes_growth_only_after_a_baseline_and_skips_itself() -> None:
    limiter = RateLimiter()
    sync = PeerSync(limiter, PeersConfig(urls=["http://peer:1"]), None)
    assert sync.merge({"instance": "p1", "keys": {"team": [10, 500]}}) == "p1"
    limiter.admit(POLICY, now=0)  # the baseline took nothing
    assert sync.merge({"instance": "p1", "keys": {"team": [12, 500]}}) == "p1"
    limiter.admit(POLICY, now=0)
    with pytest.raises(RateLimited):  # 1 + 2 absorbed + 1 = 4: the next is refused
        limiter.admit(POLICY, now=0)
    assert sync.merge({"instance": sync.instance, "keys": {"team": [99, 0]}}) is None
    assert sync.merge(["not", "a", "gateway"]) is None


def test_peers_share_their_live_figures_and_ignore_malformed_ones() -> None:
    live = LiveFigures()
    live.record("m", now=1.0, status=200, duration_s=0.02, ttft_s=None, completion_tokens=5)
    sync = PeerSync(RateLimiter(), PeersConfig(urls=["http://peer:1"]), None, live)
    assert sync.usage_body()["live"]["m"]["totals"] == [1, 0]
    theirs = {"recent": [2, 0, 9], "totals": [2, 0], "samples": 2, "latency": {}, "ttft": {}}
    sync.merge({"instance": "p1", "keys": {}, "live": {"m": theirs}})
    assert sync.peers_live("m") == [theirs] and sync.peers_live("other") == []
    sync.merge({"instance": "p2", "keys": {}, "live": "not figures"})
    assert sync.peers_live("m") == [theirs]


async def test_peer_urls_from_dns_and_config() -> None:
    config = PeersConfig(urls=["http://10.0.0.9:8080/"], dns="localhost:8080")
    urls = await PeerSync(RateLimiter(), config, None).peer_urls()
    assert urls[0] == "http://10.0.0.9:8080"
    assert "http://127.0.0.1:8080" in urls[1:]
    missing = PeersConfig(dns="no-such-host.invalid:8080")
    assert await PeerSync(RateLimiter(), missing, None).peer_urls() == []


def test_peers_config_refuses_bad_addresses() -> None:
    for bad in ({"dns": "peers"}, {"urls": ["peer:8080"]}, {"interval_s": 0}):
        with pytest.raises(ValidationError):
            PeersConfig.model_validate(bad)


async def test_usage_route_is_absent_without_peers_and_auth_needs_a_secret(monkeypatch) -> None:
    status, _, _ = await call(Gateway(GatewayState(GatewayConfig())), "GET", USAGE_PATH)
    assert status == 404
    monkeypatch.delenv(PEER_SECRET_ENV, raising=False)
    keyed = GatewayConfig.model_validate(
        {"auth": {"enabled": True}, "limits": {"peers": {"urls": ["http://127.0.0.1:9"]}}}
    )
    with pytest.raises(ValueError, match=PEER_SECRET_ENV):
        await GatewayState(keyed).startup()


def test_peer_secret_from_a_file_first(tmp_path) -> None:
    """A mounted Secret keeps the token out of the environment (children, /proc, crash dumps)."""
    path = tmp_path / "secret"
    path.write_text("s3cret\n")
    both = {PEER_SECRET_FILE_ENV: str(path), PEER_SECRET_ENV: "from-the-environment"}
    assert read_peer_secret(both) == "s3cret"
    assert read_peer_secret({PEER_SECRET_ENV: "from-the-environment"}) == "from-the-environment"
    assert read_peer_secret({}) is None
    assert read_peer_secret({PEER_SECRET_ENV: ""}) is None


def test_peer_secret_file_that_cannot_serve_is_an_error(tmp_path) -> None:
    """Told to use a file, the gateway never falls back to running without the secret."""
    missing = {PEER_SECRET_FILE_ENV: str(tmp_path / "absent"), PEER_SECRET_ENV: "ignored"}
    with pytest.raises(ValueError, match=f"{PEER_SECRET_FILE_ENV}=.*absent: cannot read it"):
        read_peer_secret(missing)
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(ValueError, match="the file is empty"):
        read_peer_secret({PEER_SECRET_FILE_ENV: str(tmp_path / "empty")})


def test_observe_notes_each_peers_contact_and_skips_itself() -> None:
    sync = PeerSync(RateLimiter(), PeersConfig(urls=["http://a:1", "http://b:1"]), None)
    urls = ["http://a:1", "http://b:1", "http://self:1", "http://c:1"]
    answers = [
        {"instance": "pa", "keys": {}},
        OSError("connection refused"),
        {"instance": sync.instance, "keys": {}},
        ["not", "a", "gateway"],
    ]
    sync.observe(urls, answers, now=100.0)
    body = sync.peers_body(now=101.5)
    assert body["instance"] == sync.instance
    assert body["data"] == [
        {
            "url": "http://a:1",
            "instance": "pa",
            "healthy": True,
            "last_contact": 100.0,
            "last_contact_s_ago": 1.5,
            "error": None,
        },
        {
            "url": "http://b:1",
            "instance": None,
            "healthy": False,
            "last_contact": None,
            "last_contact_s_ago": None,
            "error": "OSError: connection refused",
        },
        {
            "url": "http://c:1",
            "instance": None,
            "healthy": False,
            "last_contact": None,
            "last_contact_s_ago": None,
            "error": "not a gateway's answer",
        },
    ]
    # a peer that stops answering keeps its last contact, now unhealthy; one gone from DNS goes
    sync.observe(["http://a:1"], [TimeoutError()], now=110.0)
    (a,) = sync.peers_body(now=110.0)["data"]
    assert (a["healthy"], a["last_contact"], a["instance"]) == (False, 100.0, "pa")
    assert a["error"] == "TimeoutError"


async def test_peers_route_is_empty_without_peers_and_for_admins_only_with_auth() -> None:
    app = Gateway(GatewayState(GatewayConfig()))
    status, _, body = await call(app, "GET", "/v1/peers")
    assert status == 200 and json.loads(body)["data"] == []

    user, admin = "sk-peers-user", "sk-peers-admin"
    config = {
        "auth": {
            "enabled": True,
            "keys": [
                {"name": "user", "sha256": hash_key(user)},
                {"name": "ops", "sha256": hash_key(admin), "scopes": ["admin"]},
            ],
        },
        "limits": {"peers": {"urls": ["http://peer:1"]}},
    }
    state = GatewayState(GatewayConfig.model_validate(config))
    assert state.peers is not None
    state.peers.observe(["http://peer:1"], [{"instance": "p", "keys": {}}], now=time.time())
    app = Gateway(state)
    assert (await call(app, "GET", "/v1/peers"))[0] == 401
    assert (await call(app, "GET", "/v1/peers", headers={"authorization": f"Bearer {user}"}))[
        0
    ] == 403
    status, _, body = await call(
        app, "GET", "/v1/peers", headers={"authorization": f"Bearer {admin}"}
    )
    (peer,) = json.loads(body)["data"]
    assert status == 200 and peer["url"] == "http://peer:1" and peer["healthy"] is True
