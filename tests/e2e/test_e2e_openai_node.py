"""OpenAI's Node.js SDK (npm ``openai``, pinned and installed by ``.ci/tools.sh openai-node``)
through the gateway, run with the machine's ``node``, once per pool and once through the mixed
name: the listing, a chat, a stream and one tool round-trip (``openai_node_client.mjs`` beside
this file does the talking and prints what came back)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from e2e_support import ANSWER_TOKENS, POOL_HEADER, Target
from pinned_tools import install

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).with_name("openai_node_client.mjs")


@pytest.fixture(scope="module")
def openai_node() -> Path:
    """The installed SDK's package folder."""
    return install("openai-node")


def run_node_client(sdk: Path, target: Target) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: install Node.js 20 or newer (with npm)")
    argv = [node, str(SCRIPT), str(sdk), target.base_url, target.model]
    if target.pool:
        argv += [POOL_HEADER, target.pool]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout))


def test_e2e_node_sdk_lists_chats_streams_and_calls_a_tool(
    openai_node: Path, target: Target
) -> None:
    seen = run_node_client(openai_node, target)
    assert seen["models"].count(target.model) == 1
    assert seen["chat"]["content"] and seen["chat"]["finish"] == "length"
    assert seen["chat"]["usage"]["completion_tokens"] == ANSWER_TOKENS
    stream = seen["stream"]
    assert stream["text"] and stream["finish"] == "length" and stream["chunks"] > 1
    assert stream["usage"]["completion_tokens"] == ANSWER_TOKENS
    tool = seen["tool"]
    (call,) = tool["calls"]
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"])["city"] in {"Oslo", "Lima"}
    assert tool["final"]["content"] and not tool["final"].get("tool_calls")
    assert tool["final_finish"] == "length"
    # The call and its result were read: a longer prompt than the question alone.
    assert tool["final_prompt_tokens"] > seen["chat"]["usage"]["prompt_tokens"]
