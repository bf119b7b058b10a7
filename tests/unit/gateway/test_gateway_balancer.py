"""Load spreading: power of two choices on outstanding x EWMA latency, ejection, in-flight bound."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from modelgrid_serving.gateway.balancer import EJECT_BASE_S, IDLE_DECAY_S, Balancer
from modelgrid_serving.gateway.routing import Backend

pytestmark = pytest.mark.unit

A, B, C = (Backend(url=f"http://{n}/v1") for n in "abc")


def make_balancer(max_in_flight: int = 100, *, tried: tuple[Backend, ...] = (A, B, C)) -> Balancer:
    """A balancer that has already sent one request to each of ``tried`` (none outstanding)."""
    balancer = Balancer(max_in_flight=max_in_flight, rng=random.Random(0))
    for backend in tried:
        balancer.started(backend.url)
        balancer.finished(backend.url, now=0)
    return balancer


def test_choose_single_backend() -> None:
    assert make_balancer().choose((A,), now=0) is A


def test_choose_spreads_evenly_over_equal_backends() -> None:
    balancer = make_balancer()
    picks = Counter(balancer.choose((A, B), now=0).url for _ in range(1000))  # type: ignore[union-attr]
    assert 400 < picks[A.url] < 600


def test_choose_prefers_the_backend_with_fewer_outstanding_requests() -> None:
    balancer = make_balancer()
    for _ in range(5):
        balancer.started(A.url)
    assert all(balancer.choose((A, B), now=0) is B for _ in range(50))


def _answered(balancer: Balancer, a_s: float, b_s: float) -> None:
    """Ten answers from each backend: A's in ``a_s`` seconds, B's in ``b_s``."""
    for _ in range(10):
        balancer.responded(A.url, a_s, now=0)
        balancer.responded(B.url, b_s, now=0)


def test_choose_prefers_the_faster_backend() -> None:
    balancer = make_balancer()
    _answered(balancer, 0.5, 0.01)
    assert all(balancer.choose((A, B), now=0) is B for _ in range(50))


def test_slow_backend_still_gets_traffic_when_the_fast_one_is_busy() -> None:
    balancer = make_balancer()
    _answered(balancer, 0.2, 0.02)
    for _ in range(20):  # 20 outstanding x 0.02 s > 1 x 0.2 s
        balancer.started(B.url)
    assert balancer.choose((A, B), now=0) is A


def test_failed_backend_is_ejected_then_used_again() -> None:
    balancer = make_balancer()
    balancer.failed(A.url, now=10.0)
    assert all(balancer.choose((A, B), now=10.0) is B for _ in range(20))
    assert {balancer.choose((A, B), now=10.0 + EJECT_BASE_S).url for _ in range(50)} == {
        A.url,
        B.url,
    }  # type: ignore[union-attr]


def test_ejection_doubles_on_consecutive_failures_and_resets_on_success() -> None:
    balancer = make_balancer()
    balancer.failed(A.url, now=0.0)
    balancer.failed(A.url, now=0.0)
    assert balancer.state(A.url).down_until == 2 * EJECT_BASE_S
    balancer.responded(A.url, 0.01, now=0)
    assert balancer.state(A.url).failures == 0
    assert balancer.state(A.url).down_until == 0.0


def test_ejected_backend_is_used_when_no_other_is_left() -> None:
    balancer = make_balancer()
    balancer.failed(A.url, now=0.0)
    assert balancer.choose((A,), now=0.0) is A


def test_choose_excludes_backends_already_tried() -> None:
    balancer = make_balancer()
    assert balancer.choose((A, B), now=0, exclude=[A.url]) is B
    assert balancer.choose((A,), now=0, exclude=[A.url]) is None


def test_choose_returns_none_when_every_backend_is_at_its_in_flight_bound() -> None:
    balancer = make_balancer(max_in_flight=2)
    for url in (A.url, A.url, B.url, B.url):
        balancer.started(url)
    assert balancer.choose((A, B), now=0) is None
    balancer.finished(B.url, now=0)
    assert balancer.choose((A, B), now=0) is B


def test_a_backend_never_tried_gets_the_next_request() -> None:
    balancer = make_balancer(tried=(A,))
    balancer.responded(A.url, 0.001, now=0)
    assert balancer.choose((A, B), now=0) is B
    balancer.started(B.url)  # one request only: then B competes on measurement
    assert balancer.choose((A, B), now=0) is A


def test_an_idle_slow_backend_is_tried_again_as_its_estimate_decays() -> None:
    balancer = make_balancer()
    balancer.responded(A.url, 2.0, now=0)  # slow once (cold start)
    for _ in range(3):
        balancer.started(B.url)
    balancer.responded(B.url, 0.05, now=0)
    assert balancer.choose((A, B), now=0.1) is B
    assert balancer.choose((A, B), now=4 * IDLE_DECAY_S) is A


def test_choose_uses_only_two_samples_among_many() -> None:
    balancer = make_balancer()
    balancer.started(C.url)
    picks = Counter(balancer.choose((A, B, C), now=0).url for _ in range(3000))  # type: ignore[union-attr]
    # C loses every comparison it is drawn into; it is chosen only... never (it is drawn with a less loaded one).
    assert picks[C.url] == 0
    assert abs(picks[A.url] - picks[B.url]) < 300


def test_forget_drops_idle_unknown_backends_only() -> None:
    balancer = make_balancer()
    balancer.started(A.url)
    balancer.state(B.url)
    balancer.forget([])
    assert balancer.state(A.url).outstanding == 1
    assert balancer.state(B.url).requests == 0
