"""values.schema.json: the defaults pass, every value is covered, and bad values fail clearly.

helm checks the schema before rendering, so each bad value below must stop ``helm template``
(and so ``helm install``) with the path of the value and what was wrong. Checks that span
several values live in templates/validate.yaml and fail with their own message.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import jsonschema
import pytest
import yaml
from chart_support import CHART
from modelgrid_operator.settings import RenderSettings

pytestmark = pytest.mark.unit

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())


def _leaves(values: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths of values.yaml down to the free-form maps and lists."""
    if isinstance(values, dict) and values:
        return {leaf for key, value in values.items() for leaf in _leaves(value, (*path, key))}
    return {path}


def _node(path: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] = SCHEMA
    for key in path:
        while "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        props = node.get("properties", {})
        if key not in props:
            # A free-form map (labels, resources' requests): its keys are the user's.
            return node if node.get("additionalProperties", True) is not False else None
        node = props[key]
    return node


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def test_chart_schema_is_valid_draft7():
    jsonschema.Draft7Validator.check_schema(SCHEMA)


def test_chart_default_values_pass_the_schema():
    jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)


@pytest.mark.parametrize("name", sorted(p.name for p in (CHART / "ci").glob("*.yaml")))
def test_chart_ci_values_pass_the_schema(name):
    values = yaml.safe_load((CHART / "ci" / name).read_text())
    jsonschema.Draft7Validator(SCHEMA).validate(values)


def test_chart_schema_covers_every_value():
    missing = [".".join(p) for p in sorted(_leaves(DEFAULTS)) if _node(p) is None]
    assert not missing, f"values.yaml keys the schema does not know: {missing}"


OPTIONAL = {"global", ".operator.settings", "resources.claims"}
"""Schema properties values.yaml leaves unset on purpose: Helm's globals, the operator's
render settings (unset keeps the operator's defaults), resource claims (rare, alpha)."""


def test_chart_every_schema_property_has_a_default():
    def walk(node: dict[str, Any], values: Any, path: str) -> list[str]:
        while "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        if node.get("additionalProperties", True) is not False:
            return []  # free-form: nothing to default
        missing = []
        for key, child in node.get("properties", {}).items():
            if not isinstance(values, dict) or key not in values:
                where = f"{path}.{key}"
                if not any(where.endswith(o) or path == o for o in OPTIONAL):
                    missing.append(where)
                continue
            missing += walk(child, values[key], f"{path}.{key}")
        return missing

    assert walk(SCHEMA, DEFAULTS, "") == []


def test_chart_schema_settings_follow_render_settings():
    """operator.settings takes exactly the operator's RenderSettings fields, in camelCase."""
    properties = SCHEMA["properties"]["operator"]["properties"]["settings"]["properties"]
    types = {
        str: "string",
        int: "integer",
        str | None: "string",
        tuple[str, ...]: "array",
        dict[str, str]: "object",
    }
    assert {key: node["type"] for key, node in properties.items()} == {
        _camel(name): types[field.annotation] for name, field in RenderSettings.model_fields.items()
    }


BAD_VALUES: list[tuple[str, list[str], str]] = [
    # (case, --set arguments, what helm must say)
    ("unknown top-level key", ["replicas=3"], "additional properties 'replicas' not allowed"),
    (
        "misspelled nested key",
        ["gateway.ingres.enabled=true"],
        "additional properties 'ingres' not allowed",
    ),
    ("wrong type", ["gateway.port=http"], "at '/gateway/port'"),
    ("port out of range", ["gateway.port=70000"], "at '/gateway/port'"),
    ("zero replicas", ["gateway.replicas=0"], "at '/gateway/replicas'"),
    ("unknown pull policy", ["image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
    ("bad namespace name", ["watchNamespaces={Team_A}"], "at '/watchNamespaces/0'"),
    (
        "bad Lease name",
        ["operator.leaderElection.leaseName=Op_Lease"],
        "at '/operator/leaderElection/leaseName'",
    ),
    (
        "Lease renewed every 0 s",
        ["operator.leaderElection.retryPeriodSeconds=0"],
        "at '/operator/leaderElection/retryPeriodSeconds'",
    ),
    (
        "unknown operator setting",
        ["operator.settings.cpuImag=x"],
        "additional properties 'cpuImag' not allowed",
    ),
    (
        "operator setting of the wrong type",
        ["operator.settings.mlxPort=high"],
        "at '/operator/settings/mlxPort'",
    ),
    (
        "API key in clear",
        ["gateway.apiKeys.keys[0].name=a", "gateway.apiKeys.keys[0].sha256=sk-1"],
        "at '/gateway/apiKeys/keys/0/sha256'",
    ),
    (
        "API key without a name",
        ["gateway.apiKeys.keys[0].sha256=" + "a" * 64],
        "at '/gateway/apiKeys/keys/0'",
    ),
    (
        "bad Secret key name",
        ["gateway.apiKeys.secretKey=my keys"],
        "at '/gateway/apiKeys/secretKey'",
    ),
    (
        "TLS without a host",
        ["gateway.ingress.enabled=true", "gateway.ingress.tls.enabled=true"],
        "at '/gateway/ingress/host'",
    ),
    ("unknown path type", ["gateway.ingress.pathType=Regex"], "at '/gateway/ingress/pathType'"),
    (
        "CORS origin without a scheme",
        ["gateway.cors.allowOrigins={localhost:3000}"],
        "at '/gateway/cors/allowOrigins/0'",
    ),
    (
        "relative probe path",
        ["gateway.readinessProbe.path=ready"],
        "at '/gateway/readinessProbe/path'",
    ),
    (
        "bad scrape interval",
        ["monitoring.serviceMonitor.interval=30 seconds"],
        "at '/monitoring/serviceMonitor/interval'",
    ),
    (
        "numeric label value",
        ["dashboards.labels.grafana_dashboard=1"],
        "at '/dashboards/labels/grafana_dashboard'",
    ),
    (
        "CPU target over 100%",
        ["gateway.autoscaling.targetCPUUtilizationPercentage=150"],
        "at '/gateway/autoscaling/targetCPUUtilizationPercentage'",
    ),
    # Checks across values (templates/validate.yaml).
    (
        "HPA min above max",
        [
            "gateway.autoscaling.enabled=true",
            "gateway.autoscaling.minReplicas=5",
            "gateway.autoscaling.maxReplicas=2",
        ],
        "gateway.autoscaling: minReplicas (5) is larger than maxReplicas (2)",
    ),
    (
        "PDB with both bounds",
        ["gateway.podDisruptionBudget.enabled=true", "gateway.podDisruptionBudget.minAvailable=1"],
        "gateway.podDisruptionBudget: set exactly one of minAvailable and maxUnavailable",
    ),
    (
        "keys and an existing Secret",
        [
            "gateway.apiKeys.existingSecret=mine",
            "gateway.apiKeys.keys[0].name=a",
            "gateway.apiKeys.keys[0].sha256=" + "a" * 64,
        ],
        "gateway.apiKeys: set either existingSecret",
    ),
    (
        "no ServiceAccount name to use",
        ["gateway.serviceAccount.create=false"],
        "gateway.serviceAccount.name is required when gateway.serviceAccount.create is false",
    ),
]


@pytest.mark.parametrize(
    ("sets", "message"), [c[1:] for c in BAD_VALUES], ids=[c[0] for c in BAD_VALUES]
)
def test_chart_rejects_bad_values(helm, sets, message):
    args = [arg for value in sets for arg in ("--set", value)]
    result = helm.template(*args)
    assert result.returncode != 0, f"helm template accepted {sets}"
    assert _says(result.stderr, message), result.stderr
    assert len(result.stderr) < 1500, "the message should be short enough to read"


def _says(stderr: str, message: str) -> bool:
    """Whether helm's error says ``message`` (written as helm 4 words it; helm 3 words the
    same finding differently: ``gateway.port: Invalid type...``)."""
    if message in stderr:
        return True
    if at := re.fullmatch(r"at '/(.*)'", message):
        return f"- {at[1].replace('/', '.')}: " in stderr
    if extra := re.fullmatch(r"additional properties '(.*)' not allowed", message):
        return f"Additional property {extra[1]} is not allowed" in stderr
    return False


def _assign(values: dict[str, Any], key: str, value: Any) -> None:
    """``--set key=value`` on parsed values: dotted keys, ``name[i]`` list items."""
    parts: list[str | int] = []
    for part in key.split("."):
        name, _, index = part.partition("[")
        parts += [name, int(index.rstrip("]"))] if index else [name]
    node: Any = values
    for part, following in itertools.pairwise(parts):
        if isinstance(part, int):
            while len(node) <= part:
                node.append({})
            node = node[part]
        else:
            node = node.setdefault(part, [] if isinstance(following, int) else {})
    node[parts[-1]] = value


@pytest.mark.parametrize(
    ("sets", "message"),
    [c[1:] for c in BAD_VALUES if "at '" in c[2]],
    ids=[c[0] for c in BAD_VALUES if "at '" in c[2]],
)
def test_chart_schema_rejects_bad_values_without_helm(sets, message):
    """The same table through Python's jsonschema: the schema, not helm, says no."""
    values = yaml.safe_load(yaml.safe_dump(DEFAULTS))
    for assignment in sets:
        key, _, raw = assignment.partition("=")
        # Like helm's --set: scalars are typed ("1" is a number), {a,b} is a list.
        value: Any = (
            yaml.safe_load(raw)
            if not raw.startswith("{")
            else [yaml.safe_load(v) for v in raw.strip("{}").split(",")]
        )
        _assign(values, key, value)
    path = message.removeprefix("at '").rstrip("'").strip("/").split("/")
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(values))
    assert errors, f"jsonschema accepted {sets}"
    reported = {"/".join(str(p) for p in e.absolute_path) for e in errors}
    reported |= {"/".join(str(p) for p in c.absolute_path) for e in errors for c in e.context}
    assert "/".join(path) in reported, reported
