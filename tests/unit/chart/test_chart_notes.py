"""NOTES.txt tells the user the next command, for each way the chart can be installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap

import pytest
import yaml
from chart_support import MONITORING_API, NAMESPACE, ROOT, values_args

pytestmark = pytest.mark.unit

KUBERAY_API = "ray.io/v1/RayService"


def _heredoc(notes: str) -> str:
    """The here-document's body; its end marker must start the line, or bash never ends it."""
    (body,) = re.findall(r"<<'EOF'\n(.*?)\nEOF\n", notes, re.DOTALL)
    return textwrap.dedent(body)


def test_chart_notes_render_as_helm_install_prints_them(helm):
    notes = helm.notes()
    assert f"modelgrid 0.1.0 is installed in namespace {NAMESPACE} (release mg)." in notes
    assert "kubectl get inferencemodels -A -w" in notes


def test_chart_notes_apply_the_cpu_example(chart_copy, tmp_path):
    """The model in NOTES.txt is examples/cpu-tiny.yaml, and the pasted command sends it."""
    notes = chart_copy.notes("--api-versions", KUBERAY_API)
    example = yaml.safe_load((ROOT / "examples" / "cpu-tiny.yaml").read_text())
    assert yaml.safe_load(_heredoc(notes)) == example
    (command,) = re.findall(r"^ *(kubectl apply .*?^EOF$)", notes, re.DOTALL | re.MULTILINE)
    assert command.startswith("kubectl apply -n default -f - <<'EOF'")
    # Paste it into bash with a kubectl that records what it was given.
    fake = tmp_path / "kubectl"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/stdin\n')
    fake.chmod(0o755)
    bash = shutil.which("bash")
    assert bash, "bash is needed to run the command of NOTES.txt"
    subprocess.run(
        [bash, "-c", command],
        check=True,
        timeout=30,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )
    assert (tmp_path / "args").read_text() == "apply -n default -f -\n"
    assert yaml.safe_load((tmp_path / "stdin").read_text()) == example


def test_chart_notes_warn_when_kuberay_is_missing(chart_copy):
    assert "this cluster has no KubeRay" in chart_copy.notes()
    assert "KubeRay" not in chart_copy.notes("--api-versions", KUBERAY_API)


def test_chart_notes_port_forward_and_key_by_default(chart_copy):
    notes = chart_copy.notes("--api-versions", KUBERAY_API)
    assert f"kubectl -n {NAMESPACE} port-forward service/mg-modelgrid-gateway 8080:80" in notes
    assert "export OPENAI_BASE_URL=http://127.0.0.1:8080/v1" in notes
    assert (
        f"kubectl -n {NAMESPACE} get secret mg-modelgrid-gateway-api-keys \\\n"
        "      -o jsonpath='{.data.api-key}' | base64 -d)"
    ) in notes
    assert 'curl -s $OPENAI_BASE_URL/models -H "Authorization: Bearer $OPENAI_API_KEY"' in notes
    assert "WARNING" not in notes


def test_chart_notes_use_the_ingress_and_the_existing_secret(chart_copy):
    notes = chart_copy.notes(
        *values_args("ingress-tls-values"), *values_args("existing-secret-values")
    )
    assert "export OPENAI_BASE_URL=https://llm.example.com/v1" in notes
    assert "port-forward" not in notes
    assert "export OPENAI_API_KEY=...   # one of your keys (the Secret llm-api-keys" in notes


def test_chart_notes_without_keys(chart_copy):
    notes = chart_copy.notes("--set", "gateway.apiKeys.enabled=false")
    assert "export OPENAI_API_KEY=unused" in notes
    assert "get secret" not in notes


def test_chart_notes_warn_when_monitoring_has_no_api(chart_copy):
    warning = "no monitoring.coreos.com/v1 API"
    assert warning in chart_copy.notes(*values_args("monitoring-values"))
    served = chart_copy.notes(*values_args("monitoring-values"), "--api-versions", MONITORING_API)
    assert warning not in served


def test_chart_notes_warn_when_only_the_operator_monitor_has_no_api(chart_copy):
    notes = chart_copy.notes("--set", "monitoring.operatorMonitor.enabled=true")
    assert "no monitoring.coreos.com/v1 API" in notes


def test_chart_notes_use_the_first_watched_namespace(chart_copy):
    notes = chart_copy.notes(*values_args("namespaced-values"))
    assert "kubectl apply -n team-a -f - <<'EOF'" in notes
