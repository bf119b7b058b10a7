"""The operator's metrics served over HTTP on a local port (the figures themselves are unit
tests: tests/unit/operator/test_operator_metrics.py)."""

from __future__ import annotations

import httpx
import pytest
from modelgrid_operator.metrics import OperatorMetrics, serve_metrics
from unit.operator.test_operator_metrics import BODY, _status

pytestmark = pytest.mark.integration


def test_operator_metrics_served_over_http() -> None:
    m = OperatorMetrics()
    m.reconciled(BODY, action="created", status=_status(), seconds=0.0)
    server = serve_metrics(m, 0, host="127.0.0.1")
    try:
        port = server.server_address[1]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    assert (
        'modelgrid_operator_reconciles_total{model="l3",namespace="team-a",result="created"}'
        in text
    )
