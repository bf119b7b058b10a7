"""Faults with real backends: load spreading, failover, a backend killed mid-stream, a backend
that goes away and comes back, a client that disconnects, connection failures retried."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_support import Backends, Gateway, Server, Servers, backend, free_port
from polling import wait_for

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "count"}]
LONG = 1800  # tokens: a few seconds of streaming on the tiny model


def chat(gw: Gateway, model: str, **kw: Any) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 2, **kw}
    return httpx.post(gw.v1 + "/chat/completions", json=body, timeout=60)


def stats(gw: Gateway) -> dict[str, Any]:
    return {m["id"]: m for m in httpx.get(gw.v1 + "/stats").json()["models"]}


def listed(gw: Gateway) -> set[str]:
    return {m["id"] for m in httpx.get(gw.v1 + "/models").json()["data"]}


def test_load_spreads_over_the_backends_of_one_model(gateway: Gateway) -> None:
    before = {b["backend"]: b["requests"] for b in stats(gateway)["tiny"]["backends"]}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: chat(gateway, "tiny").status_code, range(48)))
    assert codes == [200] * 48
    after = {b["backend"]: b["requests"] for b in stats(gateway)["tiny"]["backends"]}
    served = {name: after[name] - before[name] for name in after}
    assert sum(served.values()) == 48
    # Both replicas take traffic. Not an even split: the balancer weighs measured latency, and
    # one slow answer (a cold replica) holds a backend's share down for about a second.
    assert min(served.values()) >= 1, served


@pytest.fixture()
def pair(servers: Servers, tiny_model: Path) -> tuple[Server, Server, Gateway]:
    """Two fresh mlx servers D and E; models solo-d (D), solo-e (E) and pair (D and E)."""
    d = servers.mlx(tiny_model, name="mlx-d")
    e = servers.mlx(tiny_model, name="mlx-e")
    d.wait_ready()
    e.wait_ready()
    config = {
        "models": [
            {"name": "solo-d", "backends": [backend(d, tiny_model, "d")]},
            {"name": "solo-e", "backends": [backend(e, tiny_model, "e")]},
            {
                "name": "pair",
                "backends": [backend(d, tiny_model, "d"), backend(e, tiny_model, "e")],
            },
        ],
        "limits": {"health_interval_s": 0.5},
    }
    gw = servers.gateway(config, name="gateway-faults")
    wait_for(lambda: listed(gw) == {"solo-d", "solo-e", "pair"}, timeout=30, what="all listed")
    return d, e, gw


def test_backend_killed_mid_stream_ends_only_its_stream_with_an_error(
    pair: tuple[Server, Server, Gateway], servers: Servers, tiny_model: Path
) -> None:
    d, _, gw = pair
    client = openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0, timeout=120)
    first_chunk = {"solo-d": threading.Event(), "solo-e": threading.Event()}
    outcome: dict[str, Any] = {}

    def consume(model: str) -> None:
        chunks = 0
        try:
            stream = client.chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=LONG, stream=True
            )
            for chunk in stream:
                chunks += 1
                first_chunk[model].set()
                if chunk.choices and chunk.choices[0].finish_reason:
                    outcome[model] = chunk.choices[0].finish_reason
        except openai.APIError as exc:
            outcome[model] = exc
        finally:
            first_chunk[model].set()
            outcome[f"{model}-chunks"] = chunks

    threads = [threading.Thread(target=consume, args=(m,)) for m in ("solo-d", "solo-e")]
    for t in threads:
        t.start()
    for event in first_chunk.values():
        assert event.wait(60)
    d.stop(signal.SIGKILL)
    for t in threads:
        t.join(120)
    client.close()
    assert isinstance(outcome["solo-d"], openai.APIError), outcome
    assert "failed mid-stream" in str(outcome["solo-d"])
    assert outcome["solo-d-chunks"] < LONG
    assert outcome["solo-e"] == "length"  # the other stream finished untouched

    # pair fails over to E at once: connection refused before the first byte is retried
    assert [chat(gw, "pair").status_code for _ in range(6)] == [200] * 6
    # solo-d turns 503 with Retry-After within seconds, and leaves the listing
    wait_for(lambda: chat(gw, "solo-d").status_code == 503, timeout=10, what="solo-d to answer 503")
    refused = chat(gw, "solo-d")
    assert refused.headers["retry-after"] == "5"
    assert listed(gw) == {"solo-e", "pair"}

    # D comes back on its port: solo-d serves again within seconds, without a gateway restart
    servers.mlx(tiny_model, port=int(d.url.rsplit(":", 1)[1]), name="mlx-d-again").wait_ready()
    wait_for(lambda: chat(gw, "solo-d").status_code == 200, timeout=15, what="solo-d back")
    assert listed(gw) == {"solo-d", "solo-e", "pair"}
    metrics = httpx.get(gw.metrics_url + "/metrics").text
    assert (
        'modelgrid_gateway_upstream_errors_total{kind="stream",model="solo-d",pool="d"} 1.0'
        in metrics
    )


def test_client_disconnect_cancels_the_upstream_request(
    pair: tuple[Server, Server, Gateway],
) -> None:
    _, _, gw = pair
    body = {"model": "solo-e", "messages": MESSAGES, "max_tokens": LONG, "stream": True}
    with httpx.stream("POST", gw.v1 + "/chat/completions", json=body, timeout=60) as resp:
        pieces = resp.iter_raw()
        while b"data:" not in next(pieces):
            pass
        assert stats(gw)["solo-e"]["in_flight"] == 1
    # closed after the first event: the gateway notices, closes its upstream connection
    wait_for(lambda: stats(gw)["solo-e"]["in_flight"] == 0, timeout=3, what="in-flight to drop")
    metrics = httpx.get(gw.metrics_url + "/metrics").text
    assert (
        'modelgrid_gateway_requests_total{model="solo-e",pool="e",route="chat",status="499"} 1.0'
        in metrics
    )
    assert chat(gw, "solo-e").status_code == 200  # the backend is free for the next request


def test_connection_failures_are_retried_on_another_backend(
    servers: Servers, backends: Backends
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    config = {
        "models": [
            {"name": "flaky", "backends": [{"url": dead}, backend(backends.a, backends.tiny, "a")]},
            {"name": "gone", "backends": [{"url": dead}]},
        ],
        "limits": {"health_interval_s": 0},  # no probe: the proxy itself meets the dead backend
    }
    gw = servers.gateway(config, name="gateway-retry")
    assert [chat(gw, "flaky").status_code for _ in range(8)] == [200] * 8
    (dead_backend,) = [b for b in stats(gw)["flaky"]["backends"] if b["backend"] == "default/0"]
    assert dead_backend["errors"] >= 1
    gone = chat(gw, "gone")
    assert gone.status_code == 502
    assert gone.json()["error"]["code"] == "upstream_unavailable"
