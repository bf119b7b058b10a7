"""checkov, pinned, over everything the project puts on a cluster: zero failed checks.

Two scans, one checkov run each: the chart as ``helm template`` renders it (the default values
and every ``ci/*.yaml``, ``full-values.yaml`` turning everything on), and ``modelgrid render`` of
every example. The only checks not counted are the ones ``.checkov.yaml`` skips, each with its
reason. A failure names the check, the resource and the file (and checkov's guideline where it
has one: offline, it has them only for the few checks whose guideline ships with it).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHECKOV_CONFIG, ROOT, VALUE_SETS, Checkov, Finding, Rendered, Scan
from modelgrid_cli import main as cli

pytestmark = [pytest.mark.unit, pytest.mark.security]

EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.yaml"))

CANARY = """\
apiVersion: v1
kind: Pod
metadata:
  name: canary
  namespace: scanned
spec:
  containers:
    - name: root
      image: busybox:1.36
      securityContext:
        privileged: true
"""
"""A pod every scan must fail: proof that the scan ran its checks and skipped only the listed."""

CANARY_FAILS = {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_23"}  # privileged, escalation, root


def _report(findings: list[Finding]) -> str:
    ordered = sorted(findings, key=lambda f: (f.resource, f.check_id))
    return "checkov found:\n" + "\n".join(f"  {f}" for f in ordered)


def _scan(checkov: Checkov, folder: Path, files: dict[str, str]) -> Scan:
    for name, text in {**files, "canary.yaml": CANARY}.items():
        (folder / name).write_text(text)
    scan = checkov.scan(folder)
    missed = CANARY_FAILS - {f.check_id for f in scan.failed_in("canary.yaml")}
    assert not missed, f"checkov passed a privileged root pod on {sorted(missed)}"
    return scan


@pytest.fixture(scope="module")
def chart_scan(
    checkov: Checkov, rendered: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory
) -> Scan:
    files = {f"{name}.yaml": rendered[name].stdout for name in VALUE_SETS}
    return _scan(checkov, tmp_path_factory.mktemp("checkov-chart"), files)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_checkov_passes_the_chart(chart_scan, rendered, name):
    file = f"{name}.yaml"
    workloads = {
        f"Deployment.{d['metadata']['namespace']}.{d['metadata']['name']}"
        for d in rendered[name].by_kind["Deployment"]
    }
    assert workloads and workloads <= chart_scan.checked_in(file), chart_scan.checked_in(file)
    failed = chart_scan.failed_in(file)
    assert not failed, _report(failed)


def render_example(name: str) -> list[dict[str, Any]]:
    """The objects ``modelgrid render examples/<name>`` prints, with the default settings."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(out):
        for variable in [v for v in os.environ if v.startswith("MODELGRID_")]:
            env.delenv(variable)
        assert cli.main(["render", str(ROOT / "examples" / name)]) == 0
    return [o for o in yaml.safe_load_all(out.getvalue()) if o]


def kuberay_pods(rayservice: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The head pod and one pod of each worker group, as the Pods KubeRay makes of them.

    checkov knows no KubeRay kinds and so would check nothing inside a RayService. KubeRay
    creates the Ray head and every worker from these pod templates, adding its own labels (the
    deterministic ones are added here), a few environment variables, and on the head the
    autoscaler's sidecar; scanning each template as a Pod checks what the cluster will run.
    """
    name, namespace = rayservice["metadata"]["name"], rayservice["metadata"]["namespace"]
    cluster = rayservice["spec"]["rayClusterConfig"]
    groups = [("head", "headgroup", cluster["headGroupSpec"])]
    groups += [("worker", g["groupName"], g) for g in cluster.get("workerGroupSpecs", [])]
    for node_type, group, spec in groups:
        metadata = spec["template"].get("metadata", {})
        yield {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{node_type}" + (f"-{group}" if node_type == "worker" else ""),
                "namespace": namespace,
                "labels": {
                    **metadata.get("labels", {}),
                    "ray.io/node-type": node_type,
                    "ray.io/group": group,
                    "ray.io/is-ray-node": "yes",
                },
                "annotations": metadata.get("annotations", {}),
            },
            "spec": spec["template"]["spec"],
        }


def test_kuberay_pods_come_from_every_group():
    objects = render_example("mixed-nvidia-apple.yaml")
    gpu, mac = [o for o in objects if o["kind"] == "RayService"]  # one per pool
    pods = [*kuberay_pods(gpu), *kuberay_pods(mac)]
    gpu_name, mac_name = gpu["metadata"]["name"], mac["metadata"]["name"]
    assert [p["metadata"]["name"] for p in pods] == [
        f"{gpu_name}-head",
        f"{gpu_name}-worker-gpu",
        f"{mac_name}-head",
        f"{mac_name}-worker-mac",
    ]
    assert pods[3]["metadata"]["labels"]["modelgrid.io/pool"] == "mac"
    assert [c["name"] for c in pods[3]["spec"]["containers"]] == ["ray-worker", "mlx-server"]


@pytest.fixture(scope="module")
def render_scan(checkov: Checkov, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    files = {}
    for name in EXAMPLES:
        objects = render_example(name)
        pods = [p for o in objects if o["kind"] == "RayService" for p in kuberay_pods(o)]
        assert pods, f"{name}: no RayService rendered"
        # Every rendered object (a RayService is not checked; a NetworkPolicy is, and selects
        # the pods beside it), and the pods KubeRay makes of the RayService.
        files[name] = yaml.safe_dump_all([*objects, *pods], sort_keys=False)
    return _scan(checkov, tmp_path_factory.mktemp("checkov-render"), files)


@pytest.mark.parametrize("name", EXAMPLES)
def test_checkov_passes_the_rendered_models(render_scan, name):
    checked = render_scan.checked_in(name)
    assert any(r.startswith("Pod.") for r in checked), checked
    failed = render_scan.failed_in(name)
    assert not failed, _report(failed)


def test_checkov_skips_carry_their_reasons():
    """Each skipped check is on its own line with the reason beside it."""
    text = CHECKOV_CONFIG.read_text()
    skipped = yaml.safe_load(text)["skip-check"]
    assert skipped, "the skip list is empty: remove the file's skip-check"
    for check in skipped:
        (line,) = [ln for ln in text.splitlines() if re.match(rf"\s*-\s*{check}\b", ln)]
        reason = line.partition("#")[2].strip()
        assert len(reason) > 20, f"{check}: no reason given beside it"
