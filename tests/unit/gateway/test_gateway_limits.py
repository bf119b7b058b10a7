"""Per-key limits: token buckets per minute, 429 with Retry-After and x-ratelimit-* headers."""

from __future__ import annotations

import pytest
from modelgrid_serving.errors import ConcurrencyLimited, RateLimited, error_response
from modelgrid_serving.gateway.auth import KeyPolicy
from modelgrid_serving.gateway.limits import RateLimiter, format_reset

pytestmark = pytest.mark.unit


def test_admit_without_limits_sends_no_headers() -> None:
    assert RateLimiter().admit(KeyPolicy(name="k"), now=0) == {}


def test_requests_per_minute_refuses_the_next_request_with_retry_after() -> None:
    limiter, policy = RateLimiter(), KeyPolicy(name="k", requests_per_minute=2)
    first = limiter.admit(policy, now=0)
    assert first["x-ratelimit-limit-requests"] == "2"
    assert first["x-ratelimit-remaining-requests"] == "1"
    limiter.admit(policy, now=0)
    with pytest.raises(RateLimited) as caught:
        limiter.admit(policy, now=0)
    reply = error_response(caught.value)
    assert reply.status_code == 429
    assert reply.content()["error"]["type"] == "requests"
    assert reply.content()["error"]["code"] == "rate_limit_exceeded"
    assert reply.headers["Retry-After"] == "30"  # one request refills in 60/2 s
    assert reply.headers["x-ratelimit-remaining-requests"] == "0"
    assert reply.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert reply.content()["error"]["message"] == (
        "Rate limit reached for key 'k': 2 requests per minute. Retry in 30.0s."
    )


def test_requests_refill_continuously() -> None:
    limiter, policy = RateLimiter(), KeyPolicy(name="k", requests_per_minute=60)
    for _ in range(60):
        limiter.admit(policy, now=0)
    with pytest.raises(RateLimited):
        limiter.admit(policy, now=0.5)
    limiter.admit(policy, now=1.0)  # one per second


def test_tokens_per_minute_reserves_at_admission_and_settles_to_usage() -> None:
    limiter, policy = RateLimiter(), KeyPolicy(name="k", tokens_per_minute=600)
    headers = limiter.admit(policy, now=0, reserve=100)
    assert headers["x-ratelimit-remaining-tokens"] == "500"
    limiter.settle(policy, reserved=100, used=700, now=0)  # over budget: below zero
    with pytest.raises(RateLimited) as caught:
        limiter.admit(policy, now=5)  # 5 s refill 50 tokens: still -50
    assert caught.value.type == "tokens"
    assert caught.value.headers["Retry-After"] == "6"  # to +1 token at 10 tokens/s: 5.1 s
    assert str(caught.value) == (
        "Rate limit reached for key 'k': 600 tokens per minute. Retry in 5.1s."
    )
    limiter.admit(policy, now=10.1)


def test_a_reservation_larger_than_the_allowance_needs_a_full_bucket() -> None:
    limiter, policy = RateLimiter(), KeyPolicy(name="k", tokens_per_minute=600)
    assert limiter.reservation(policy, 5000) == 600
    limiter.admit(policy, now=0, reserve=600)
    limiter.settle(policy, reserved=600, used=20, now=0)  # the unused part comes back
    assert limiter.admit(policy, now=0, reserve=500)["x-ratelimit-remaining-tokens"] == "80"


def test_limits_are_per_key() -> None:
    limiter = RateLimiter()
    alice, bob = (
        KeyPolicy(name="alice", requests_per_minute=1),
        KeyPolicy(name="bob", requests_per_minute=1),
    )
    limiter.admit(alice, now=0)
    limiter.admit(bob, now=0)
    with pytest.raises(RateLimited):
        limiter.admit(alice, now=0)


def test_a_changed_limit_starts_a_fresh_bucket() -> None:
    limiter = RateLimiter()
    limiter.admit(KeyPolicy(name="k", requests_per_minute=1), now=0)
    with pytest.raises(RateLimited):  # the one-a-minute bucket is empty
        limiter.admit(KeyPolicy(name="k", requests_per_minute=1), now=0)
    raised = limiter.admit(KeyPolicy(name="k", requests_per_minute=5), now=0)
    # A full bucket of the new size, less this request: nothing carried over from the old one.
    assert raised["x-ratelimit-limit-requests"] == "5"
    assert raised["x-ratelimit-remaining-requests"] == "4"
    lowered = limiter.admit(KeyPolicy(name="k", requests_per_minute=3), now=0)
    assert lowered["x-ratelimit-limit-requests"] == "3"
    assert lowered["x-ratelimit-remaining-requests"] == "2"


def test_concurrent_requests_are_bounded_per_key_and_released_when_settled() -> None:
    limiter = RateLimiter()
    alice, bob = KeyPolicy(name="alice", max_concurrent=2), KeyPolicy(name="bob", max_concurrent=2)
    limiter.admit(alice, now=0)
    limiter.admit(alice, now=0)
    with pytest.raises(ConcurrencyLimited) as caught:
        limiter.admit(alice, now=0)
    reply = error_response(caught.value)
    assert (reply.status_code, reply.content()["error"]["code"]) == (
        429,
        "concurrency_limit_exceeded",
    )
    assert reply.headers["Retry-After"] == "1"
    limiter.admit(bob, now=0)  # another key's slots are its own
    limiter.settle(alice, reserved=0, used=0, now=0)
    limiter.admit(alice, now=0)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.02, "20ms"), (0, "0ms"), (1.5, "1.5s"), (59.0, "59s"), (360, "6m0s")]
)
def test_format_reset_like_openai(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text
