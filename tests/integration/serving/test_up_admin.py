"""``modelgrid up --admin``: a second model loaded into the running process with one command,
served next to the first, unloaded while it streams; the first serves throughout.

Real parts end to end: ``modelgrid up`` and ``modelgrid load`` as a user runs them
(subprocesses), embedded Ray and Serve, MLX's CPU build as both models' engine (it starts in
seconds; the vLLM path is the same Serve application), the gateway in front, the OpenAI SDK as
the client. Run it under the heavy lock (it starts Ray and two engines).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Self

import openai
import pytest
import yaml
from local_stack import _stop, engine_env, free_port, says_ready, spawn, wait_started
from polling import wait_for

pytestmark = pytest.mark.integration

START_DEADLINE_S = 300.0
FIRST = {
    "apiVersion": "modelgrid.io/v1alpha1",
    "kind": "InferenceModel",
    "metadata": {"name": "first"},
    "spec": {
        "model": {"uri": "builtin://tiny-llama"},
        "engine": "mlx",
        "engineArgs": {"maxModelLen": 2048},
        "pools": [{"name": "mac", "accelerator": "apple"}],
    },
}


def modelgrid(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modelgrid_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def admin_call(url: str, method: str, key: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method)
    request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


class KeepAsking:
    """Asks the first model, one request after another, until stopped; counts the failures."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client
        self.answered = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.chat.completions.create(
                    model="first", messages=[{"role": "user", "content": "hi"}], max_tokens=8
                )
                self.answered += 1
            except openai.OpenAIError as exc:
                self.failures.append(repr(exc))
            time.sleep(0.05)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)


def load_over_grpc(port: int, key: str, client: openai.OpenAI) -> str:
    """LoadModel a third model over gRPC, wait for Ready, chat with it, UnloadModel it."""
    import grpc
    from modelgrid_serving.gateway.hosting import model_hosting_pb2 as pb
    from modelgrid_serving.gateway.hosting import rpc

    metadata = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        hosting = rpc.ModelHostingStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            hosting.LoadModel(pb.LoadModelRequest(model_path="builtin://tiny-llama",
                                                  precision="int4"), metadata=metadata)  # fmt: skip
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        loaded = hosting.LoadModel(
            pb.LoadModelRequest(model_path="builtin://tiny-llama", precision="auto", name="third"),
            metadata=metadata,
        )

        def phase() -> str:
            request = pb.ModelStatusRequest(model_id=loaded.model_id)
            return hosting.GetModelStatus(request, metadata=metadata).phase

        wait_for(lambda: phase() in ("Ready", "Failed"), timeout=180, what="third Ready")
        assert phase() == "Ready"
        answer = client.chat.completions.create(
            model=loaded.model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=8
        )
        assert answer.model == loaded.model_id
        unloaded = hosting.UnloadModel(
            pb.UnloadModelRequest(model_id=loaded.model_id), metadata=metadata
        )
        assert unloaded.phase == "Unloading"

        def gone() -> bool:
            try:
                phase()
            except grpc.RpcError as exc:
                return exc.code() == grpc.StatusCode.NOT_FOUND
            return False

        wait_for(gone, timeout=120, what="third unloaded")
    return loaded.model_id


def test_up_admin_loads_a_second_model_and_unloads_it_while_it_streams(tmp_path: Path) -> None:
    marker, port = uuid.uuid4().hex, free_port()
    env = {**engine_env(marker), "MODELGRID_CACHE": str(tmp_path / "cache")}
    env.pop("MODELGRID_API_KEY", None)
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(FIRST))
    log = tmp_path / "up.log"
    argv = [sys.executable, "-m", "modelgrid_cli", "up", str(first), "--port", str(port)]
    grpc_port = free_port()
    proc = spawn([*argv, "--admin", "--grpc-port", str(grpc_port)], log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_started(proc, log, lambda: says_ready(log), timeout=START_DEADLINE_S, what="up")
        key = (tmp_path / "cache" / "up" / f"admin-key-{port}").read_text().strip()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        # without the admin key nobody loads anything (the models need none)
        wrong = tmp_path / "wrong-key"
        wrong.write_text("sk-guessed\n")
        refused = modelgrid(
            "load", "builtin://tiny-llama", "--gateway", url, "--api-key-file", str(wrong), env=env
        )
        assert refused.returncode == 2 and "403" in refused.stderr  # served, but no scope

        with KeepAsking(client) as first_model:
            loaded = modelgrid(
                "load", "builtin://tiny-llama", "--name", "second", "--accelerator", "apple",
                "--engine", "mlx", "--max-model-len", "2048", "--gateway", url, "--wait",
                env=env,
            )  # fmt: skip
            assert loaded.returncode == 0, loaded.stdout + loaded.stderr
            assert "second: Pending: done in" in loaded.stdout
            assert "second: Ready in" in loaded.stdout

            assert {"first", "second"} <= {m.id for m in client.models.list()}
            answer = client.chat.completions.create(
                model="second", messages=[{"role": "user", "content": "hi"}], max_tokens=8
            )
            assert answer.model == "second" and answer.choices[0].message.content is not None
            listed = modelgrid("models", "--gateway", url, env=env)
            assert listed.returncode == 0
            assert any(
                line.split()[:2] == ["second", "Ready"] for line in listed.stdout.splitlines()
            )

            stream = client.chat.completions.create(
                model="second",
                messages=[{"role": "user", "content": "tell me everything"}],
                max_tokens=1500,
                stream=True,
            )
            chunks = [next(iter(stream))]
            status, body = admin_call(f"{url}/v1/admin/models/second", "DELETE", key)
            assert status == 202 and body["status"]["phase"] == "Unloading"
            with pytest.raises(openai.NotFoundError):  # new requests: 404 at once
                client.chat.completions.create(
                    model="second", messages=[{"role": "user", "content": "hi"}], max_tokens=8
                )
            chunks += list(stream)  # the stream in flight finishes
            assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason is not None
            assert any(c.choices and c.choices[0].finish_reason for c in chunks)

            wait_for(
                lambda: admin_call(f"{url}/v1/admin/models/second", "GET", key)[0] == 404,
                timeout=120,
                what="the second model removed",
            )
            assert "second" not in {m.id for m in client.models.list()}

            # the same through gRPC ModelHosting, as CorpGrid's clients call it
            third = load_over_grpc(grpc_port, key, client)
            assert third == "third"
        assert first_model.failures == [] and first_model.answered > 0
    finally:
        leftovers = _stop(proc, marker)
    assert not leftovers, f"modelgrid up left processes after SIGTERM: {leftovers}"
