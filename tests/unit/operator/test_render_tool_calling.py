"""``spec.toolCalling``, ``spec.reasoning`` and ``spec.chatTemplate``: what each pool's
application is given, where a ConfigMap template is mounted, and what ``modelgrid up`` runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from factories import make_model, pool
from modelgrid_operator.render import render_rayservice, to_local_run
from modelgrid_operator.render.app_config import CHAT_TEMPLATE_DIR, CHAT_TEMPLATE_FILE
from modelgrid_operator.settings import RenderSettings

pytestmark = pytest.mark.unit

SETTINGS = RenderSettings()
TEMPLATE = "{% for m in messages %}{{ m.content }}{% endfor %}"


def first_pools_rayservice(**spec: Any) -> dict[str, Any]:
    """The RayService of the first pool of a model of ``spec``."""
    model = make_model(**spec)
    return render_rayservice(model, model.spec.pools[0], settings=SETTINGS)


def app_args(**spec: Any) -> dict[str, Any]:
    rs = first_pools_rayservice(**spec)
    return yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"][0]["args"]


def worker_spec(**spec: Any) -> dict[str, Any]:
    rs = first_pools_rayservice(**spec)
    return rs["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]


def test_render_without_the_fields_runs_no_parser_and_the_models_template() -> None:
    args = app_args()
    assert (args["tool_call_parser"], args["reasoning_parser"], args["chat_template"]) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize("parser", ["auto", "hermes", "llama3_json"])
def test_render_tool_calling_parser_reaches_the_application(parser: str) -> None:
    assert app_args(toolCalling={"parser": parser})["tool_call_parser"] == parser


def test_render_tool_calling_defaults_to_auto() -> None:
    assert app_args(toolCalling={})["tool_call_parser"] == "auto"


def test_render_reasoning_parser_reaches_the_application() -> None:
    assert app_args(reasoning={"parser": "deepseek_r1"})["reasoning_parser"] == "deepseek_r1"


def test_render_inline_chat_template_is_passed_as_text_and_mounts_nothing() -> None:
    assert app_args(chatTemplate={"inline": TEMPLATE})["chat_template"] == TEMPLATE
    spec = worker_spec(chatTemplate={"inline": TEMPLATE})
    assert "chat-template" not in {v["name"] for v in spec["volumes"]}


def test_render_config_map_chat_template_is_mounted_where_the_application_reads_it() -> None:
    ref = {"configMapRef": {"name": "templates", "key": "llama.jinja"}}
    assert (
        app_args(chatTemplate=ref)["chat_template"] == f"{CHAT_TEMPLATE_DIR}/{CHAT_TEMPLATE_FILE}"
    )
    spec = worker_spec(chatTemplate=ref)
    volume = next(v for v in spec["volumes"] if v["name"] == "chat-template")
    assert volume["configMap"] == {
        "name": "templates",
        "items": [{"key": "llama.jinja", "path": CHAT_TEMPLATE_FILE}],
    }
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "chat-template")
    assert mount == {"name": "chat-template", "mountPath": CHAT_TEMPLATE_DIR, "readOnly": True}


def test_local_run_passes_the_same_fields_to_each_pool() -> None:
    model = make_model(
        model={"uri": "builtin://tiny-llama"},
        pools=[pool("cpu", "cpu")],
        toolCalling={"parser": "hermes"},
        reasoning={"parser": "qwen3"},
        chatTemplate={"inline": TEMPLATE},
    )
    (app,) = to_local_run(model, builtin_root="/cache").applications()
    assert (app.tool_call_parser, app.reasoning_parser, app.chat_template) == (
        "hermes",
        "qwen3",
        TEMPLATE,
    )


def test_local_run_refuses_a_config_map_template() -> None:
    model = make_model(
        pools=[pool("cpu", "cpu")],
        chatTemplate={"configMapRef": {"name": "templates", "key": "t"}},
    )
    with pytest.raises(ValueError, match=r"spec\.chatTemplate\.configMapRef.*inline"):
        to_local_run(model, builtin_root="/cache")
