"""The web console's server side: its files under /ui/, GET /v1/console, the live figures, and
what the sources keep of an InferenceModel's status for it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from modelgrid_serving.gateway.app import Gateway
from modelgrid_serving.gateway.auth import hash_key
from modelgrid_serving.gateway.config import GatewayConfig
from modelgrid_serving.gateway.console import ASSETS, UI_DIR, console_view, model_state
from modelgrid_serving.gateway.live import LiveFigures, percentile
from modelgrid_serving.gateway.routing import build_table
from modelgrid_serving.gateway.sources import entry_from_inferencemodel
from modelgrid_serving.gateway.state import GatewayState

pytestmark = pytest.mark.unit

KEY = "sk-console-0001"


def make_state(**overrides: Any) -> GatewayState:
    config = {
        "models": [
            {
                "name": "llama",
                "aliases": ["chat"],
                "backends": [
                    {"url": "http://127.0.0.1:9/v1", "pool": "a"},
                    {"url": "http://127.0.0.1:10/v1", "pool": "b"},
                ],
            },
            {"name": "other", "backends": [{"url": "http://127.0.0.1:11/v1"}]},
        ],
        "limits": {"health_interval_s": 0},
        **overrides,
    }
    return GatewayState(GatewayConfig.model_validate(config))


async def get(
    app: Gateway, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    out_headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], out_headers, b"".join(m.get("body", b"") for m in sent[1:])


def make_inferencemodel(name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "team",
            "creationTimestamp": "2026-01-02T03:04:05Z",
        },
        "spec": {},
        "status": {
            "phase": "Ready",
            "phaseSince": "2026-01-02T03:06:00Z",
            "endpoint": f"http://{name}-serve-svc.team.svc:8000/v1",
            "servedModelNames": ["llama"],
            "readyReplicas": 1,
            "pools": [
                {
                    "name": "gpu",
                    "accelerator": "nvidia",
                    "engine": "vllm",
                    "readyReplicas": 1,
                    "desiredReplicas": 2,
                }
            ],
            "conditions": [
                {"type": "SpecValid", "status": "True", "reason": "Valid", "message": ""},
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "ReplicasMissing",
                    "message": "pool gpu: 1 of 2 replicas ready",
                },
            ],
            "timeToReady": {"pending": 1.5, "scheduling": 20.0, "loading": 42.25, "total": 63.75},
            **status,
        },
    }


# ---- live figures ---------------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (
        50.0,
        95.0,
        100.0,
    )
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_live_rates_over_the_short_window_percentiles_over_the_long_one() -> None:
    live = LiveFigures(rate_window_s=10, percentile_window_s=60)
    for i in range(20):  # 20 requests between t=0 and t=38: half are older than 10 s at t=40
        live.record(
            "m",
            now=i * 2.0,
            status=200 if i % 5 else 502,
            duration_s=0.1 * (i + 1),
            ttft_s=0.01 * (i + 1) if i % 2 else None,
            completion_tokens=10,
        )
    fig = live.figures("m", now=40.0)
    recent = [i for i in range(20) if i * 2.0 >= 30.0]  # 15..19
    assert fig["requests_per_s"] == len(recent) / 10
    assert fig["errors_per_s"] == 0.1  # i=15 is a 502
    assert fig["tokens_per_s"] == 10 * len(recent) / 10
    assert fig["latency_ms"] == {"p50": 1000.0, "p95": 1900.0}
    assert fig["ttft_ms"] == {"p50": 100.0, "p95": 200.0}  # streams only: the odd i
    assert (fig["requests_total"], fig["errors_total"], fig["samples"]) == (20, 4, 20)
    later = live.figures("m", now=40.0 + 39.0)  # only t >= 19 remain in the minute
    assert later["samples"] == 10 and later["requests_per_s"] == 0.0
    assert later["requests_total"] == 20  # totals never forget


def test_live_counts_only_server_side_failures_and_bounds_memory() -> None:
    live = LiveFigures(max_samples=3)
    for status in (400, 429, 499, 500, 503):
        live.record("m", now=1.0, status=status, duration_s=0.1, ttft_s=None, completion_tokens=0)
    fig = live.figures("m", now=1.0)
    assert (fig["errors_total"], fig["samples"], fig["requests_total"]) == (2, 3, 5)
    assert live.figures("unknown", now=1.0)["latency_ms"] == {"p50": None, "p95": None}


def test_live_figures_of_several_gateways_add_up() -> None:
    """Two replicas' figures, as one console page shows them: counts summed, percentiles from
    the summed histograms (at most 20% above the exact ones), a malformed summary ignored."""
    a, b, both = LiveFigures(), LiveFigures(), LiveFigures()
    for i in range(40):
        replica = a if i % 4 else b  # a sees three requests in four
        for live in (replica, both):
            live.record(
                "m",
                now=i * 0.1,
                status=500 if i == 7 else 200,
                duration_s=0.005 * (i + 1),
                ttft_s=0.001 * (i + 1),
                completion_tokens=3,
            )
    merged = a.figures("m", now=4.0, peers=[b.summary("m", now=4.0), {"recent": "junk"}])
    exact = both.figures("m", now=4.0)
    for key in ("requests_per_s", "errors_per_s", "tokens_per_s", "samples"):
        assert merged[key] == exact[key], key
    assert (merged["requests_total"], merged["errors_total"]) == (40, 1)
    assert merged["gateways"] == 2 and exact["gateways"] == 1
    for figure in ("latency_ms", "ttft_ms"):
        for q in ("p50", "p95"):
            assert exact[figure][q] <= merged[figure][q] <= exact[figure][q] * 1.2 + 0.1
    alone = a.figures("m", now=4.0)
    assert alone["requests_total"] == 30  # without its peers, a replica shows its own share


# ---- sources keep what the console shows ---------------------------------------------------


def test_inferencemodel_status_keeps_phase_conditions_and_time_to_ready() -> None:
    entry = entry_from_inferencemodel(make_inferencemodel("llama-gpu"))  # type: ignore[arg-type]
    (status,) = entry.statuses
    assert status.resource == "team/llama-gpu"
    assert (status.phase, status.phase_since) == ("Ready", "2026-01-02T03:06:00Z")
    assert status.time_to_ready == (("pending", 1.5), ("scheduling", 20.0), ("loading", 42.25))
    assert status.ready_after_s == 63.75
    assert [c.reason for c in status.conditions] == ["Valid", "ReplicasMissing"]


def test_inferencemodel_without_status_is_pending_and_not_ready_yet() -> None:
    obj = {"metadata": {"name": "new", "namespace": "team"}, "spec": {}}
    (status,) = entry_from_inferencemodel(obj).statuses  # type: ignore[arg-type]
    assert (status.phase, status.ready_after_s, status.conditions) == ("Pending", None, ())
    assert status.time_to_ready == (("pending", 0.0), ("scheduling", 0.0), ("loading", 0.0))


def test_two_inferencemodels_of_one_name_keep_both_statuses() -> None:
    gpu = entry_from_inferencemodel(make_inferencemodel("llama-gpu"))  # type: ignore[arg-type]
    mac = entry_from_inferencemodel(
        make_inferencemodel("llama-mac", phase="Loading", readyReplicas=0)  # type: ignore[arg-type]
    )
    table = build_table([gpu, mac])
    merged = table.models["llama"]
    assert [s.resource for s in merged.statuses] == ["team/llama-gpu", "team/llama-mac"]
    assert model_state(merged, table.routes["llama"]) == "Degraded"  # one of two backends


# ---- the view -------------------------------------------------------------------------------


def test_view_of_static_models_groups_backends_by_pool() -> None:
    state = make_state()
    view = console_view(state, LiveFigures(), None, now=0.0)
    llama = view["models"][0]
    assert (llama["id"], llama["aliases"], llama["state"], llama["ready"]) == (
        "llama",
        ["chat"],
        "Ready",
        True,
    )
    assert [(p["name"], p["ready"], p["desired"]) for p in llama["pools"]] == [
        ("a", 1, 1),
        ("b", 1, 1),
    ]
    assert llama["resources"] == []
    assert "url" not in json.dumps(view)  # backend addresses stay inside the gateway


def test_view_of_static_model_with_a_backend_down_is_degraded_then_unavailable() -> None:
    state = make_state()
    state.catalog.set_down(frozenset({"http://127.0.0.1:9/v1"}))
    llama = console_view(state, LiveFigures(), None, now=0.0)["models"][0]
    assert llama["state"] == "Degraded"
    assert [(p["name"], p["ready"]) for p in llama["pools"]] == [("a", 0), ("b", 1)]
    state.catalog.set_down(frozenset({"http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"}))
    llama = console_view(state, LiveFigures(), None, now=0.0)["models"][0]
    assert (llama["state"], llama["ready"]) == ("Unavailable", False)


def test_view_of_an_inferencemodel_shows_phase_pools_timeline_and_problems() -> None:
    state = make_state(models=[])
    loading = make_inferencemodel("llama-gpu", phase="Loading", readyReplicas=0)
    loading["status"]["timeToReady"] = {"pending": 2.0, "scheduling": 0.0, "loading": 0.0}
    state.catalog.set_entries("kubernetes:team", [entry_from_inferencemodel(loading)])  # type: ignore[arg-type]
    (model,) = console_view(state, LiveFigures(), None, now=0.0)["models"]
    assert (model["state"], model["ready"]) == ("Loading", False)
    assert model["pools"] == [
        {"name": "gpu", "accelerator": "nvidia", "engine": "vllm", "ready": 1, "desired": 2}
    ]
    (resource,) = model["resources"]
    assert resource["time_to_ready"] == {
        "pending": 2.0,
        "scheduling": 0.0,
        "loading": 0.0,
        "total": None,
    }
    assert resource["problems"] == [
        {"type": "Ready", "reason": "ReplicasMissing", "message": "pool gpu: 1 of 2 replicas ready"}
    ]


# ---- routes ---------------------------------------------------------------------------------


async def test_ui_shell_is_served_with_a_strict_policy_and_without_a_key() -> None:
    keys = [{"name": "ci", "sha256": hash_key(KEY)}]
    app = Gateway(make_state(auth={"enabled": True, "keys": keys}))
    status, headers, _ = await get(app, "/ui")
    assert (status, headers["location"]) == (308, "ui/")  # relative: works behind a prefix
    status, headers, body = await get(app, "/ui/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
    for name in re.findall(r'(?:src|href)="([^":#]+)"', body.decode()):  # every asset it loads
        status, headers, asset = await get(app, f"/ui/{name}")
        assert status == 200 and asset == (UI_DIR / name).read_bytes(), name
        assert headers["content-type"] == ASSETS[name]
        status, _, empty = await get(app, f"/ui/{name}", {"if-none-match": headers["etag"]})
        assert (status, empty) == (304, b"")


async def test_console_data_needs_a_key_and_honours_its_allowlist() -> None:
    keys = [
        {"name": "all", "sha256": hash_key(KEY)},
        {"name": "some", "sha256": hash_key(KEY + "-other"), "models": ["chat"]},
    ]
    app = Gateway(make_state(auth={"enabled": True, "keys": keys}))
    status, _, body = await get(app, "/v1/console")
    assert (status, json.loads(body)["error"]["code"]) == (401, "invalid_api_key")
    status, _, body = await get(app, "/v1/console", {"authorization": f"Bearer {KEY}"})
    view = json.loads(body)
    assert (status, view["auth"], view["key"]) == (200, True, "all")
    assert [m["id"] for m in view["models"]] == ["llama", "other"]
    _, _, body = await get(app, "/v1/console", {"authorization": f"Bearer {KEY}-other"})
    assert [m["id"] for m in json.loads(body)["models"]] == ["llama"]  # 'chat' is llama
