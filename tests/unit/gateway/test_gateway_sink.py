"""The sink: every proxied request is accounted for there, refused or relayed. Its recorders see
each relayed request's outcome in registration order; the key's reservation is settled to the
real usage (or the estimate), and to nothing for a request that broke off."""

from __future__ import annotations

import time
from typing import Any

import pytest
from modelgrid_serving.errors import InvalidJSON, RateLimited
from modelgrid_serving.gateway.auth import KeyPolicy
from modelgrid_serving.gateway.exchange import Exchange
from modelgrid_serving.gateway.limits import RateLimiter
from modelgrid_serving.gateway.metrics import GatewayMetrics
from modelgrid_serving.gateway.sink import Sink

pytestmark = pytest.mark.unit

POLICY = KeyPolicy(name="team", tokens_per_minute=6000, max_concurrent=1)


def _relayed(body: bytes = b"{}", reserved: int = 100) -> Exchange:
    return Exchange(
        scope={},
        route="chat",
        model="llama",
        body=body,
        payload={"model": "llama"},
        headers=[],
        policy=POLICY,
        reserved=reserved,
        started=time.perf_counter(),
    )


def _sink() -> tuple[Sink, GatewayMetrics, RateLimiter, list[tuple[str, Any]]]:
    metrics, limiter = GatewayMetrics(), RateLimiter()
    seen: list[tuple[str, Any]] = []

    def recorder(name: str) -> Any:
        def record(x: Exchange) -> None:
            seen.append((name, (x.model, x.status, x.prompt_tokens, x.completion_tokens)))

        return record

    return Sink(metrics, limiter, (recorder("first"), recorder("second"))), metrics, limiter, seen


def test_sink_tells_each_recorder_in_order_and_settles_to_the_reported_usage() -> None:
    sink, _, limiter, seen = _sink()
    limiter.admit(POLICY, now=time.monotonic(), reserve=100)
    x = _relayed()
    x.usage = (7, 3)
    sink.finished(x, 200)
    assert seen == [("first", ("llama", 200, 7, 3)), ("second", ("llama", 200, 7, 3))]
    assert x.duration_s >= 0 and x.ended > 0
    assert limiter.consumed["team"] == [0, 10]  # the reservation became the real usage
    limiter.admit(POLICY, now=time.monotonic())  # it left the key's requests in flight


def test_sink_estimates_usage_a_backend_did_not_report() -> None:
    sink, _, _, seen = _sink()
    x = _relayed(body=b"x" * 40)
    x.events = 5
    sink.finished(x, 200)
    assert seen[0] == ("first", ("llama", 200, 10, 5))  # 4 bytes a prompt token, one an event


def test_sink_settles_a_request_that_broke_off_to_nothing_and_records_nothing() -> None:
    sink, _, limiter, seen = _sink()
    limiter.admit(POLICY, now=time.monotonic(), reserve=100)
    x = _relayed()
    x.usage = (7, 3)
    sink.finished(x, None)
    assert seen == []
    assert limiter.consumed.get("team", [0, 0]) == [0, 0]
    limiter.admit(POLICY, now=time.monotonic())  # its slot came back


def test_sink_counts_refusals_by_reason_and_rate_limits_by_key() -> None:
    sink, metrics, _, _ = _sink()
    sample = metrics.registry.get_sample_value
    limited = RateLimited("Rate limit reached.", kind="tokens", headers={})
    sink.rejected(POLICY, limited)
    sink.refused("llama", "chat", 429)
    sink.rejected(POLICY, InvalidJSON("not JSON"))
    sink.refused("-", "chat", 400)
    assert sample("modelgrid_gateway_rate_limited_total", {"key": "team", "limit": "tokens"}) == 1
    assert sample("modelgrid_gateway_rejected_total", {"reason": "invalid_json"}) == 1
    labels = {"model": "llama", "pool": "-", "route": "chat", "status": "429"}
    assert sample("modelgrid_gateway_requests_total", labels) == 1
