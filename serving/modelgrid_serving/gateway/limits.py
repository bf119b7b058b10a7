"""Per-key limits: requests per minute and tokens per minute as token buckets, and requests in
flight at once.

Each per-minute limit is a bucket holding up to one minute's allowance, refilled continuously. A
request needs one request-token, and its token reservation (the prompt's estimate plus its
``max_tokens``, or a default, capped at the bucket's capacity) taken out of the token bucket at
admission: so concurrent requests cannot all be admitted against one allowance. When it ends
the reservation is settled to its real usage (reported by the backend, else an estimate): the
difference goes back, or a long answer pushes the bucket below zero and the next request waits.
A key's requests in flight are counted from admission to settlement, and refused over its bound.
Refusals say when to retry (``Retry-After``) and every answer carries OpenAI's ``x-ratelimit-*``
headers. Pure: the clock is passed in; the reservation is arithmetic on the key's bucket.

Several gateway processes share a key's allowance (see :mod:`.peers`): each counts what it
consumed itself (:attr:`RateLimiter.consumed`, running totals) and takes what its peers
consumed out of its own buckets (:meth:`RateLimiter.absorb`), so the limit holds for the key
across replicas, give or take one sync interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConcurrencyLimited, RateLimited
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
        self._active: dict[str, int] = {}
        """key name -> requests admitted and not yet settled (keys with a bound only)."""
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

    def admit(self, policy: KeyPolicy, *, now: float, reserve: int = 0) -> dict[str, str]:
        """Take one request, and ``reserve`` tokens, from the key's allowance; count it in flight.

        Every admitted request must be settled (:meth:`settle`) once, whatever its outcome.

        Args:
            policy: The caller's key.
            now: The clock.
            reserve: Tokens to hold for the request (ignored without a tokens limit); at least
                one, at most the bucket's capacity (a request larger than a minute's allowance
                needs a full bucket).

        Returns:
            The ``x-ratelimit-*`` headers for the answer (empty for a key without limits).

        Raises:
            RateLimited: a limit is exhausted (429, ``Retry-After`` and the same headers).
            ConcurrencyLimited: the key has ``max_concurrent`` requests in flight (429).
        """
        requests = tokens = None
        bound = policy.max_concurrent
        active = 0
        if bound is not None:
            active = self._active.get(policy.name, 0)
            if active >= bound:
                raise ConcurrencyLimited(
                    f"Concurrency limit reached for key '{policy.name}': {bound} requests in "
                    "flight. Retry when one of them has ended.",
                )
        if policy.requests_per_minute:
            requests = self._bucket(
                self._requests, self._owed_requests, policy.name, policy.requests_per_minute, now
            )
        if policy.tokens_per_minute:
            tokens = self._bucket(
                self._tokens, self._owed_tokens, policy.name, policy.tokens_per_minute, now
            )
        if requests is not None and requests.level < 1:
            allowance = f"{policy.requests_per_minute} requests"
            wait = requests.seconds_until(1)
            raise _exhausted(policy, allowance, "requests", wait, requests, tokens)
        need = 0 if tokens is None else self.reservation(policy, reserve)
        if tokens is not None and tokens.level < need:
            allowance = f"{policy.tokens_per_minute} tokens"
            wait = tokens.seconds_until(need)
            raise _exhausted(policy, allowance, "tokens", wait, requests, tokens)
        if requests is not None:
            requests.level -= 1
            self._count(policy.name, 1, 0)
        if tokens is not None:
            tokens.level -= need
        if bound is not None:
            self._active[policy.name] = active + 1
        if requests is None and tokens is None:
            return {}
        return _headers(requests, tokens)

    def reservation(self, policy: KeyPolicy, reserve: int) -> int:
        """What :meth:`admit` takes for ``reserve`` (what :meth:`settle` gives back)."""
        if not policy.tokens_per_minute:
            return 0
        return min(max(reserve, 1), policy.tokens_per_minute)

    def settle(self, policy: KeyPolicy, *, reserved: int, used: int, now: float) -> None:
        """End an admitted request: its token reservation becomes its real usage ``used``
        (prompt + completion), and it leaves the key's requests in flight.

        Args:
            policy: The key it was admitted for.
            reserved: What admission reserved (:meth:`reservation` of its ``reserve``).
            used: Its real token usage.
            now: The clock.
        """
        if policy.max_concurrent is not None:
            active = self._active.get(policy.name, 0)
            if active > 1:
                self._active[policy.name] = active - 1
            else:
                self._active.pop(policy.name, None)
        if policy.tokens_per_minute:
            bucket = self._bucket(
                self._tokens, self._owed_tokens, policy.name, policy.tokens_per_minute, now
            )
            bucket.level += reserved - max(used, 0)
            if used > 0:
                self._count(policy.name, 0, used)


def _exhausted(
    policy: KeyPolicy,
    allowance: str,
    kind: str,
    wait: float,
    requests: Bucket | None,
    tokens: Bucket | None,
) -> RateLimited:
    """The 429 for a key whose ``allowance`` per minute is spent: in how many seconds it
    suffices again (``Retry-After``, whole seconds, at least one) and the key's
    ``x-ratelimit-*`` headers, as OpenAI sends them."""
    return RateLimited(
        f"Rate limit reached for key '{policy.name}': {allowance} per minute. "
        f"Retry in {wait:.1f}s.",
        kind=kind,
        headers={"Retry-After": str(max(1, math.ceil(wait))), **_headers(requests, tokens)},
    )


def _headers(requests: Bucket | None, tokens: Bucket | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, bucket in (("requests", requests), ("tokens", tokens)):
        if bucket is not None:
            out[f"x-ratelimit-limit-{kind}"] = str(int(bucket.capacity))
            out[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(bucket.level)))
            out[f"x-ratelimit-reset-{kind}"] = format_reset(bucket.reset_s())
    return out
