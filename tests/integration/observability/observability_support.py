"""Helpers of the Prometheus test: processes we start (Prometheus, a gateway), Prometheus' HTTP
API, and the PromQL of the chart's dashboards with their variables substituted.

Prometheus is the Debian package's binary (``prometheus`` on PATH; ``.ci/run`` installs it),
run with a private data directory and a 1 s scrape interval, and stopped at teardown. The
gateway is started as users start it, ``python -m modelgrid_serving.gateway --config FILE``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from integration.gateway.gateway_support import Gateway, Servers
from local_stack import free_port, spawn, wait_started
from polling import wait_for

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = ROOT / "charts" / "modelgrid" / "dashboards"
START_DEADLINE_S = 90.0


def _ok(url: str) -> bool:
    """``GET url`` answers 200. httpx, not ``blocking_http.answers_ok``: the probe runs inside
    the async test's running event loop, where blocking_http cannot start a loop of its own."""
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def process(
    argv: list[str], log: Path, ready_url: str, env: dict[str, str] | None = None
) -> Iterator[None]:
    """Run ``argv`` in its own process group until the block ends; wait for ``ready_url``."""
    proc = spawn(argv, log, env)
    try:
        wait_started(
            proc,
            log,
            lambda: _ok(ready_url),
            timeout=START_DEADLINE_S,
            what=f"{argv[0]} at {ready_url}",
        )
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def prometheus_binary() -> str:
    """The Debian package's ``prometheus``; fails (never skips) without it: CI installs it."""
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail(
            "prometheus is not installed (Debian package `prometheus`; .ci/run installs it)"
        )
    return found


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus: its HTTP API."""

    url: str

    def get(self, path: str, **params: Any) -> Any:
        reply = httpx.get(self.url + path, params=params, timeout=10)
        body = reply.json()
        if body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {reply.status_code} {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query now; the vector's samples (scalars and strings as one sample)."""
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def targets_up(self) -> dict[str, str]:
        """Scrape job -> health of its target."""
        active = self.get("/api/v1/targets")["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    def scraped_after(self, moment: datetime) -> bool:
        """Whether every target's latest scrape began after ``moment``."""
        active = self.get("/api/v1/targets")["activeTargets"]
        return bool(active) and all(_instant(t["lastScrape"]) > moment for t in active)

    def wait_for_scrapes(self, count: int) -> None:
        """Until every target has been scraped ``count`` more times (rates see what just
        happened)."""
        for n in range(1, count + 1):
            since = datetime.now(UTC)
            wait_for(lambda since=since: self.scraped_after(since), timeout=30, what=f"scrape {n}")


def _instant(text: str) -> datetime:
    """Prometheus's RFC 3339 time (nanoseconds, ``Z``) as an aware datetime."""
    head, _, fraction = text.removesuffix("Z").partition(".")
    fraction, sign, offset = re.match(r"(\d*)([+-]?)(.*)", fraction).groups()  # type: ignore[union-attr]
    zone = f"{sign}{offset}" if sign else "+00:00"
    return datetime.fromisoformat(f"{head}.{(fraction or '0')[:6]:0<6}{zone}")


class PromQLError(AssertionError):
    """Prometheus refused a query (it does not parse, or failed to evaluate)."""


@contextmanager
def prometheus(work: Path, jobs: dict[str, str]) -> Iterator[Prometheus]:
    """Prometheus scraping ``jobs`` (name -> ``http://host:port``, path /metrics) every second."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": name,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [url.split("://", 1)[1]]}],
            }
            for name, url in jobs.items()
        ],
    }
    config_path = work / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    argv = [
        prometheus_binary(),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={work / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    url = f"http://127.0.0.1:{port}"
    with process(argv, work / "prometheus.log", url + "/-/ready"):
        yield Prometheus(url)


@contextmanager
def gateway(work: Path, config: dict[str, Any]) -> Iterator[Gateway]:
    """A gateway with a static config (its API and its metrics port)."""
    with Servers(work) as servers:
        yield servers.gateway(config)


# ---- the dashboards' PromQL -------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One PromQL expression of one panel."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str


def dashboards() -> dict[str, dict[str, Any]]:
    """The dashboards the chart ships, by file name."""
    found = {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}
    assert found, f"no dashboards in {DASHBOARDS}"
    return found


def panel_queries(dashboard_file: str, dashboard: dict[str, Any]) -> list[Query]:
    """Every target expression of every panel (rows' nested panels included)."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [
        Query(dashboard_file, panel["title"], target["refId"], target["expr"])
        for panel in panels
        for target in panel.get("targets", [])
    ]


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's variables as Grafana would fill them (``$name`` and ``${name}``)."""
    for name in sorted(values, key=len, reverse=True):  # $__rate_interval before $__rate...
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def has_number(samples: list[dict[str, Any]]) -> bool:
    """Whether a result holds at least one finite value."""
    return any(math.isfinite(float(s["value"][1])) for s in samples)
