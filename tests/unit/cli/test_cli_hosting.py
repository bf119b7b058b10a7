"""``modelgrid load``, ``unload`` and ``models`` against a scripted admin API (no sockets: the
HTTP helper is replaced by a double that answers as the gateway's admin API does)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from modelgrid_cli import hosting
from modelgrid_cli.main import main
from modelgrid_serving import blocking_http

pytestmark = pytest.mark.unit

KEY = "sk-admin-cli-1"


class ScriptedGateway:
    """Answers each call with the next scripted reply for its method; records the calls."""

    def __init__(self, **replies: list[tuple[int, Any]]) -> None:
        self.replies = replies
        self.calls: list[tuple[str, str, Any, dict[str, str]]] = []

    def answer(self, method: str, url: str, payload: Any, headers: dict[str, str] | None) -> Any:
        self.calls.append((method, url, payload, headers or {}))
        status, body = self.replies[method].pop(0)
        if status == 0:
            raise blocking_http.NoAnswer(url)
        return blocking_http.Reply(status, json.dumps(body))


@pytest.fixture()
def gateway(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(**replies: list[tuple[int, Any]]) -> ScriptedGateway:
        fake = ScriptedGateway(**replies)
        monkeypatch.setattr(
            blocking_http,
            "post_json",
            lambda url, payload, *, timeout_s, headers=None: fake.answer(
                "POST", url, payload, headers
            ),
        )
        for method, verb in (("get", "GET"), ("delete", "DELETE")):
            monkeypatch.setattr(
                blocking_http,
                method,
                lambda url, *, timeout_s, headers=None, m=verb: fake.answer(m, url, None, headers),
            )
        monkeypatch.setattr(hosting, "POLL_S", 0)
        monkeypatch.setenv("MODELGRID_API_KEY", KEY)
        monkeypatch.delenv("MODELGRID_GATEWAY", raising=False)
        return fake

    return install


def model(phase: str, **status: Any) -> dict[str, Any]:
    return {
        "id": "second",
        "name": "second",
        "uri": "builtin://tiny-llama",
        "managed": True,
        "loaded_by": "ops",
        "status": {"phase": phase, **status},
    }


def test_cli_load_posts_the_request_with_the_key_from_the_environment(gateway, capsys):
    fake = gateway(POST=[(202, model("Pending"))])
    argv = ["load", "builtin://tiny-llama", "--name", "second", "--alias", "tiny"]
    argv += ["--accelerator", "cpu", "--dtype", "float32", "--max-model-len", "512"]
    assert main(argv) == 0
    ((method, url, payload, headers),) = fake.calls
    assert (method, url) == ("POST", "http://127.0.0.1:8000/v1/admin/models")
    assert payload == {
        "uri": "builtin://tiny-llama",
        "name": "second",
        "aliases": ["tiny"],
        "accelerator": "cpu",
        "engineArgs": {"dtype": "float32", "maxModelLen": 512},
    }
    assert headers == {"authorization": f"Bearer {KEY}"}
    assert "[modelgrid] second: Pending" in capsys.readouterr().out


def test_cli_load_takes_no_key_on_the_command_line():
    with pytest.raises(SystemExit):
        main(["load", "builtin://tiny-llama", "--api-key", KEY])


def test_cli_load_reads_the_key_from_a_file(gateway, tmp_path):
    fake = gateway(POST=[(202, model("Pending"))])
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    gateway_url = "https://llm.example.com/"
    argv = ["load", "org/m", "--api-key-file", str(key_file), "--gateway", gateway_url]
    assert main(argv) == 0
    assert fake.calls[0][1] == "https://llm.example.com/v1/admin/models"
    assert fake.calls[0][3] == {"authorization": "Bearer sk-from-file"}


def test_cli_load_wait_prints_each_phase_with_its_time(gateway, capsys):
    gateway(
        POST=[(202, model("Pending"))],
        GET=[
            (200, model("Pending")),
            (200, model("Scheduling")),
            (200, model("Loading")),
            (200, model("Ready", timeToReady={"pending": 1.0, "scheduling": 2.5, "loading": 30})),
        ],
    )
    assert main(["load", "builtin://tiny-llama", "--name", "second", "--wait"]) == 0
    out = capsys.readouterr().out
    for line in ("second: Pending: done in", "second: Scheduling: done in", "Loading: done in"):
        assert line in out
    assert "second: Ready in" in out
    assert "(pending 1.0 s, scheduling 2.5 s, loading 30.0 s)" in out
    assert '"model": "second"' in out  # how to try it


def test_cli_load_wait_exits_1_with_the_reason_when_failed(gateway, capsys):
    failed = model(
        "Failed",
        conditions=[{"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "no"}],
    )
    gateway(POST=[(202, model("Pending"))], GET=[(200, failed)])
    assert main(["load", "org/m", "--name", "second", "--wait"]) == 1
    assert "second: Failed: InvalidSpec: no" in capsys.readouterr().out


def test_cli_load_refusal_shows_the_gateways_message(gateway, capsys):
    error = {
        "error": {
            "message": "spec.pools[0].minReplicas: minReplicas must not exceed maxReplicas",
            "param": "spec.pools[0].minReplicas",
            "code": "invalid_spec",
        }
    }
    gateway(POST=[(400, error)])
    assert main(["load", "org/m"]) == 2
    err = capsys.readouterr().err
    assert "400: spec.pools[0].minReplicas: minReplicas must not exceed maxReplicas" in err


def test_cli_load_without_a_gateway_says_how_to_start_one(gateway, capsys):
    gateway(POST=[(0, None)])
    assert main(["load", "org/m"]) == 2
    assert "no gateway answers at http://127.0.0.1:8000" in capsys.readouterr().err


def test_cli_unload_wait_until_gone(gateway, capsys):
    fake = gateway(
        DELETE=[(202, model("Unloading"))],
        GET=[
            (200, model("Unloading")),
            (404, {"error": {"code": "model_not_found", "message": "gone"}}),
        ],
    )
    assert main(["unload", "second", "--wait"]) == 0
    assert fake.calls[0][:2] == ("DELETE", "http://127.0.0.1:8000/v1/admin/models/second")
    out = capsys.readouterr().out
    assert "second: Unloading" in out and "second: unloaded in" in out


def test_cli_unload_unknown_model(gateway, capsys):
    gateway(DELETE=[(404, {"error": {"code": "model_not_found", "message": "x"}})])
    assert main(["unload", "nope"]) == 2
    assert "nope: no such model" in capsys.readouterr().err


def test_cli_models_lists_phases_and_who_loaded_them(gateway, capsys):
    other = {**model("Ready"), "id": "team", "managed": False, "loaded_by": None, "uri": "org/m"}
    gateway(GET=[(200, {"object": "list", "data": [model("Loading"), other]})])
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "LOADED", "BY", "URI"]
    assert lines[1].split() == ["second", "Loading", "ops", "builtin://tiny-llama"]
    assert lines[2].split()[:2] == ["team", "Ready"] and "(not the admin API)" in lines[2]


def test_cli_load_refuses_a_key_file_of_several_lines(gateway, tmp_path, capsys):
    fake = gateway(POST=[(202, model("Pending"))])
    key_file = tmp_path / "key"
    key_file.write_text("sk-secret\nmore: lines\n")
    assert main(["load", "org/m", "--api-key-file", str(key_file)]) == 2
    err = capsys.readouterr().err
    assert "one line" in err and "sk-secret" not in err and fake.calls == []
