"""Per-key rate limits: requests per minute and tokens per minute, as token buckets.

Each limit is a bucket holding up to one minute's allowance, refilled continuously. A request
needs one request-token and a token bucket above zero; it is charged its real token usage when
it ends (usage reported by the backend, else an estimate), so a long answer pushes the bucket
below zero and the next request waits. Refusals say when to retry (``Retry-After``) and every
answer carries OpenAI's ``x-ratelimit-*`` headers. Pure: the clock is passed in.

Several gateway processes share a key's allowance (see :mod:`.peers`): each counts what it
consumed itself (:attr:`RateLimiter.consumed`, running totals) and takes what its peers
consumed out of its own buckets (:meth:`RateLimiter.absorb`), so the limit holds for the key
across replicas, give or take one sync interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import RateLimited
from .auth import KeyPolicy


@dataclass(slots=True)
class Bucket:
    """A token bucket of ``capacity`` per minute."""

    capacity: float
    level: float
    updated: float

    @property
    def rate(self) -> float:
        """Refill per second."""
        return self.capacity / 60.0

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def seconds_until(self, level: float) -> float:
        """Seconds until the bucket holds ``level`` (0 when it does)."""
        return max(0.0, (level - self.level) / self.rate)

    def reset_s(self) -> float:
        """Seconds until full again."""
        return self.seconds_until(self.capacity)


def format_reset(seconds: float) -> str:
    """A duration as OpenAI writes ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{int(rest)}s"


class RateLimiter:
    """The buckets of every key that has limits."""

    def __init__(self) -> None:
        self._requests: dict[str, Bucket] = {}
        self._tokens: dict[str, Bucket] = {}
        self._owed_requests: dict[str, float] = {}
        self._owed_tokens: dict[str, float] = {}
        self.consumed: dict[str, list[int]] = {}
        """key name -> [requests, tokens] this process admitted and charged since it started
        (keys with limits only): what its peers read."""

    def _bucket(
        self,
        table: dict[str, Bucket],
        owed: dict[str, float],
        name: str,
        capacity: int,
        now: float,
    ) -> Bucket:
        bucket = table.get(name)
        if bucket is None or bucket.capacity != capacity:  # new key, or its limit changed
            bucket = table[name] = Bucket(capacity, float(capacity), now)
        bucket.refill(now)
        if owed:
            bucket.level -= owed.pop(name, 0.0)
        return bucket

    def absorb(self, name: str, requests: int, tokens: int) -> None:
        """Take what peers consumed for key ``name`` out of its buckets (at their next use)."""
        if requests > 0:
            self._owed_requests[name] = self._owed_requests.get(name, 0.0) + requests
        if tokens > 0:
            self._owed_tokens[name] = self._owed_tokens.get(name, 0.0) + tokens

    def _count(self, name: str, requests: int, tokens: int) -> None:
        totals = self.consumed.get(name)
        if totals is None:
            totals = self.consumed[name] = [0, 0]
        totals[0] += requests
        totals[1] += tokens

    def admit(self, policy: KeyPolicy, *, now: float) -> dict[str, str]:
        """Take one request from the key's allowance.

        Returns:
            The ``x-ratelimit-*`` headers for the answer (empty for a key without limits).

        Raises:
            RateLimited: a limit is exhausted (429, ``Retry-After`` and the same headers).
        """
        headers: dict[str, str] = {}
        requests = tokens = None
        if policy.requests_per_minute:
            requests = self._bucket(
                self._requests, self._owed_requests, policy.name, policy.requests_per_minute, now
            )
        if policy.tokens_per_minute:
            tokens = self._bucket(
                self._tokens, self._owed_tokens, policy.name, policy.tokens_per_minute, now
            )
        if requests is not None and requests.level < 1:
            wait = requests.seconds_until(1)
            raise RateLimited(
                f"Rate limit reached for key '{policy.name}': "
                f"{policy.requests_per_minute} requests per minute. Retry in {wait:.1f}s.",
                kind="requests",
                headers={"Retry-After": str(max(1, math.ceil(wait))), **_headers(requests, tokens)},
            )
        if tokens is not None and tokens.level <= 0:
            wait = tokens.seconds_until(1)
            raise RateLimited(
                f"Rate limit reached for key '{policy.name}': "
                f"{policy.tokens_per_minute} tokens per minute. Retry in {wait:.1f}s.",
                kind="tokens",
                headers={"Retry-After": str(max(1, math.ceil(wait))), **_headers(requests, tokens)},
            )
        if requests is not None:
            requests.level -= 1
            self._count(policy.name, 1, 0)
        headers.update(_headers(requests, tokens))
        return headers

    def charge(self, policy: KeyPolicy, tokens: int, *, now: float) -> None:
        """Charge ``tokens`` (prompt + completion) to the key once its request ended."""
        if policy.tokens_per_minute and tokens > 0:
            bucket = self._bucket(
                self._tokens, self._owed_tokens, policy.name, policy.tokens_per_minute, now
            )
            bucket.level -= tokens
            self._count(policy.name, 0, tokens)


def _headers(requests: Bucket | None, tokens: Bucket | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, bucket in (("requests", requests), ("tokens", tokens)):
        if bucket is not None:
            out[f"x-ratelimit-limit-{kind}"] = str(int(bucket.capacity))
            out[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
            out[f"x-ratelimit-reset-{kind}"] = format_reset(bucket.reset_s())
    return out
