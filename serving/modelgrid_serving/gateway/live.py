"""Live figures per model for the console: rates and percentiles over the last requests.

Prometheus histograms answer "what were the percentiles" only to a Prometheus that scrapes and
diffs them; the console needs the answer from the gateway alone, with no Prometheus installed.
So each relayed request leaves one small sample here when it ends, and the figures are computed
server-side over a sliding window when ``/v1/console`` is read (once a second or two per open
page, a few thousand samples at most: cheap). Rates use a short window (they should move when
traffic stops), percentiles a longer one (they need samples). Memory is bounded per model.
The clock is passed in.

Several gateway replicas (the chart runs two) each see only the requests that reached them, and
a page behind a load balancer would show one, then another. So each process also offers a
mergeable summary (:meth:`LiveFigures.summaries`: counts over the windows and log-bucketed
histograms), its peers read it with the usage they share for limits (:mod:`.peers`), and the
figures shown add every process's counts; the merged percentiles are read from the summed
histograms, up to 20% above the exact ones (the buckets grow by 1.2x).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .exchange import Exchange

RATE_WINDOW_S = 10.0
"""Requests/s, errors/s and tokens/s are averaged over this many seconds."""
PERCENTILE_WINDOW_S = 60.0
"""TTFT and latency percentiles are taken over the requests that ended this recently."""
MAX_SAMPLES = 10_000
"""Per model; past it the oldest samples go first (percentiles then cover less than a minute)."""
BUCKET_BASE_MS = 0.1
BUCKET_GROWTH = 1.2
"""Histogram bucket ``k`` of a summary holds durations up to ``0.1 ms x 1.2**k``."""


class Sample(NamedTuple):
    """One relayed request, as it ended (a tuple: one is made per request)."""

    at: float
    """Monotonic time it ended."""
    status: int
    duration_s: float
    ttft_s: float | None
    """Time to the first streamed event; ``None`` for answers in one piece."""
    completion_tokens: int


@dataclass(slots=True)
class _Totals:
    requests: int = 0
    errors: int = 0


def is_error(status: int) -> bool:
    """A failure on the serving side (5xx). 4xx are the client's; 499 is a client that left."""
    return status >= 500


def percentile(sorted_values: list[float], q: int) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of already sorted values; ``None`` when empty."""
    if not sorted_values:
        return None
    return sorted_values[_rank(len(sorted_values), q) - 1]


def _rank(count: int, q: int) -> int:
    """The 1-based nearest rank of percentile ``q`` among ``count`` values."""
    return max(1, -(-count * q // 100))  # integer ceil


class LiveFigures:
    """Per-model samples of the last requests, and the figures the console shows."""

    def __init__(
        self,
        *,
        rate_window_s: float = RATE_WINDOW_S,
        percentile_window_s: float = PERCENTILE_WINDOW_S,
        max_samples: int = MAX_SAMPLES,
    ) -> None:
        self.rate_window_s = rate_window_s
        self.percentile_window_s = max(percentile_window_s, rate_window_s)
        self._max = max_samples
        self._samples: dict[str, deque[Sample]] = {}
        self._totals: dict[str, _Totals] = {}

    def finished(self, x: Exchange) -> None:
        """A relayed request ended (a recorder of the sink)."""
        sample = Sample(x.ended, x.status, x.duration_s, x.ttft_s, x.completion_tokens)
        self._add(x.model, sample)

    def record(
        self,
        model: str,
        *,
        now: float,
        status: int,
        duration_s: float,
        ttft_s: float | None,
        completion_tokens: int,
    ) -> None:
        """Note one relayed request of ``model`` that ended at ``now``, told field by field."""
        self._add(model, Sample(now, status, duration_s, ttft_s, completion_tokens))

    def _add(self, model: str, sample: Sample) -> None:
        samples = self._samples.get(model)
        if samples is None:
            samples = self._samples[model] = deque(maxlen=self._max)
            self._totals[model] = _Totals()
        samples.append(sample)
        totals = self._totals[model]
        totals.requests += 1
        totals.errors += is_error(sample.status)
        self._prune(samples, sample.at)

    def _prune(self, samples: deque[Sample], now: float) -> None:
        horizon = now - self.percentile_window_s
        while samples and samples[0].at < horizon:
            samples.popleft()

    def figures(self, model: str, *, now: float, peers: Sequence[Any] = ()) -> dict[str, Any]:
        """What the console shows of ``model``: rates over the short window, percentiles (ms)
        over the long one, totals since the gateway started. With ``peers`` (their
        :meth:`summary` of the model), the figures of every process together."""
        if peers:
            return merge_summaries([self.summary(model, now=now), *peers], self.rate_window_s)
        samples, recent, totals = self._window(model, now)
        durations = sorted(s.duration_s for s in samples)
        ttfts = sorted(s.ttft_s for s in samples if s.ttft_s is not None)

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 1)

        return _shown(
            recent,
            totals,
            len(samples),
            ttft_ms=(ms(percentile(ttfts, 50)), ms(percentile(ttfts, 95))),
            latency_ms=(ms(percentile(durations, 50)), ms(percentile(durations, 95))),
            rate_window_s=self.rate_window_s,
            gateways=1,
        )

    def summary(self, model: str, *, now: float) -> dict[str, Any]:
        """``model``'s figures in a form that adds up across processes (JSON)."""
        samples, recent, totals = self._window(model, now)
        return {
            "recent": list(recent),
            "totals": list(totals),
            "samples": len(samples),
            "latency": _histogram(s.duration_s for s in samples),
            "ttft": _histogram(s.ttft_s for s in samples if s.ttft_s is not None),
        }

    def _window(
        self, model: str, now: float
    ) -> tuple[deque[Sample], tuple[int, int, int], tuple[int, int]]:
        """``model``'s samples of the long window; requests, errors and completion tokens of
        the short one; its totals (requests, errors)."""
        samples = self._samples.get(model, deque())
        self._prune(samples, now)
        recent = [s for s in samples if s.at >= now - self.rate_window_s]
        counts = (
            len(recent),
            sum(is_error(s.status) for s in recent),
            sum(s.completion_tokens for s in recent),
        )
        totals = self._totals.get(model, _Totals())
        return samples, counts, (totals.requests, totals.errors)

    def summaries(self, *, now: float) -> dict[str, dict[str, Any]]:
        """:meth:`summary` of every model this process has relayed requests for."""
        return {model: self.summary(model, now=now) for model in self._totals}


def bucket_of(seconds: float) -> int:
    """The histogram bucket of a duration (see :data:`BUCKET_GROWTH`)."""
    ms = seconds * 1000
    if ms <= BUCKET_BASE_MS:
        return 0
    return math.ceil(math.log(ms / BUCKET_BASE_MS, BUCKET_GROWTH) - 1e-9)


def _histogram(durations: Iterable[float]) -> dict[str, int]:
    return {str(k): n for k, n in Counter(bucket_of(d) for d in durations).items()}


def merge_summaries(summaries: Sequence[Any], rate_window_s: float) -> dict[str, Any]:
    """The console's figures from several processes' summaries. A peer's summary is read
    defensively: one that is not well formed counts for nothing."""
    recent, totals, samples = [0, 0, 0], [0, 0], 0
    latency: Counter[int] = Counter()
    ttft: Counter[int] = Counter()
    gateways = 0
    for summary in summaries:
        try:
            part_recent = [int(v) for v in summary["recent"]]
            part_totals = [int(v) for v in summary["totals"]]
            part_latency = Counter({int(k): int(n) for k, n in summary["latency"].items()})
            part_ttft = Counter({int(k): int(n) for k, n in summary["ttft"].items()})
            part_samples = int(summary["samples"])
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if len(part_recent) != len(recent) or len(part_totals) != len(totals):
            continue
        recent = [a + b for a, b in zip(recent, part_recent, strict=True)]
        totals = [a + b for a, b in zip(totals, part_totals, strict=True)]
        latency.update(part_latency)
        ttft.update(part_ttft)
        samples += part_samples
        gateways += 1
    return _shown(
        recent,
        totals,
        samples,
        ttft_ms=(_bucket_percentile(ttft, 50), _bucket_percentile(ttft, 95)),
        latency_ms=(_bucket_percentile(latency, 50), _bucket_percentile(latency, 95)),
        rate_window_s=rate_window_s,
        gateways=gateways,
    )


def _shown(
    recent: Sequence[int],
    totals: Sequence[int],
    samples: int,
    *,
    ttft_ms: tuple[float | None, float | None],
    latency_ms: tuple[float | None, float | None],
    rate_window_s: float,
    gateways: int,
) -> dict[str, Any]:
    """The figures as ``/v1/console`` shows them (see docs/console.md)."""
    requests, errors, tokens = recent
    return {
        "requests_per_s": round(requests / rate_window_s, 2),
        "errors_per_s": round(errors / rate_window_s, 2),
        "tokens_per_s": round(tokens / rate_window_s, 1),
        "ttft_ms": {"p50": ttft_ms[0], "p95": ttft_ms[1]},
        "latency_ms": {"p50": latency_ms[0], "p95": latency_ms[1]},
        "samples": samples,
        "requests_total": totals[0],
        "errors_total": totals[1],
        "gateways": gateways,
    }


def _bucket_percentile(histogram: Counter[int], q: int) -> float | None:
    """Nearest-rank percentile ``q`` of a histogram: its bucket's upper edge, in ms."""
    count = sum(n for n in histogram.values() if n > 0)
    if not count:
        return None
    rank, seen = _rank(count, q), 0
    for k in sorted(histogram):
        seen += max(0, histogram[k])
        if seen >= rank:
            return round(BUCKET_BASE_MS * BUCKET_GROWTH**k, 1)
    return None
