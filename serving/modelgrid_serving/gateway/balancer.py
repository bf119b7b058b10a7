"""Load spreading over the backends of one model: power of two choices on measured load.

Each backend keeps its outstanding requests and an EWMA of its time to response headers. A pick
samples two candidates at random and takes the one with the lower ``(outstanding + 1) * ewma``:
a slow pool (CPU next to GPU, a busy replica) gets less traffic without fixed weights, and two
random samples avoid the herd that "always the least loaded" causes across gateway replicas.
An idle backend's latency estimate decays with its idle time, and a backend never tried gets
the next request: a replica that was slow once (cold start) is measured again instead of being
starved by a stale number. A connection failure ejects a backend for a while (doubling, capped);
a backend at its in-flight bound is not picked, and when every one is, the caller answers at once
(overload, not a queue).
State is keyed by URL and survives routing-table rebuilds. Clock and randomness are passed in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .routing import Backend

EWMA_ALPHA = 0.3
INITIAL_LATENCY_S = 0.05
IDLE_DECAY_S = 1.0
"""Time constant of the decay of an idle backend's latency estimate."""
EJECT_BASE_S = 1.0
EJECT_MAX_S = 30.0


@dataclass(slots=True)
class BackendState:
    """What the gateway measured of one backend."""

    outstanding: int = 0
    ewma_s: float = INITIAL_LATENCY_S
    failures: int = 0
    """Consecutive connection failures."""
    down_until: float = 0.0
    requests: int = 0
    errors: int = 0
    last_seen: float = 0.0
    """When it last answered (monotonic)."""

    def score(self, now: float) -> float:
        """Lower is better: expected wait if one more request arrives."""
        if self.requests == 0:
            return 0.0  # never tried: try it
        ewma = self.ewma_s
        if not self.outstanding and now > self.last_seen:
            ewma *= math.exp(-(now - self.last_seen) / IDLE_DECAY_S)
        return (self.outstanding + 1) * ewma


class Balancer:
    """Chooses backends and keeps their measured state."""

    def __init__(self, *, max_in_flight: int, rng: random.Random | None = None) -> None:
        self.max_in_flight = max_in_flight
        self._rng = rng or random.Random()
        self._states: dict[str, BackendState] = {}

    def state(self, url: str) -> BackendState:
        """The state of the backend at ``url`` (created on first use)."""
        state = self._states.get(url)
        if state is None:
            state = self._states[url] = BackendState()
        return state

    def choose(
        self, backends: Sequence[Backend], *, now: float, exclude: Iterable[str] = ()
    ) -> Backend | None:
        """Pick a backend for one request.

        Args:
            backends: The model's ready backends.
            now: Monotonic time, for ejections.
            exclude: URLs already tried for this request.

        Returns:
            The backend, or ``None`` when every candidate is at its in-flight bound (or excluded).
            Ejected backends are used only when no other is left.
        """
        if len(backends) == 1 and not exclude:  # the common case, without the lists below
            only = backends[0]
            return only if self._has_room(only.url) else None
        skip = set(exclude)
        open_ = [b for b in backends if b.url not in skip and self._has_room(b.url)]
        if not open_:
            return None
        healthy = [b for b in open_ if self.state(b.url).down_until <= now]
        candidates = healthy or open_
        if len(candidates) == 1:
            return candidates[0]
        a, b = self._rng.sample(candidates, 2)
        return a if self.state(a.url).score(now) <= self.state(b.url).score(now) else b

    def _has_room(self, url: str) -> bool:
        return self.state(url).outstanding < self.max_in_flight

    def started(self, url: str) -> None:
        """A request went to ``url``."""
        state = self.state(url)
        state.outstanding += 1
        state.requests += 1

    def responded(self, url: str, latency_s: float, *, now: float) -> None:
        """``url`` sent response headers after ``latency_s``: it is alive, fold the latency in."""
        state = self.state(url)
        state.last_seen = now
        state.ewma_s += EWMA_ALPHA * (latency_s - state.ewma_s)
        state.failures = 0
        state.down_until = 0.0

    def failed(self, url: str, *, now: float) -> None:
        """``url`` refused or dropped the connection: eject it for a while."""
        state = self.state(url)
        state.failures += 1
        state.errors += 1
        state.down_until = now + min(EJECT_MAX_S, EJECT_BASE_S * 2 ** (state.failures - 1))

    def finished(self, url: str, *, now: float) -> None:
        """A request to ``url`` ended (any way)."""
        state = self.state(url)
        state.outstanding -= 1
        state.last_seen = max(state.last_seen, now)

    def outstanding(self, urls: Iterable[str]) -> int:
        """Requests in flight on these backends (an unload waits for none)."""
        return sum(s.outstanding for u in urls if (s := self._states.get(u)) is not None)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the state of backends that are no longer in any table (idle ones only)."""
        keep = set(keep)
        for url in [u for u, s in self._states.items() if u not in keep and not s.outstanding]:
            del self._states[url]
