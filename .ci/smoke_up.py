"""Smoke test of the README's first command: start it, wait until it says it is ready, send one
chat completion through the OpenAI SDK to the URL it printed, stop it with SIGTERM.

    "$venv/bin/python" .ci/smoke_up.py make up

Run it with the project's environment (it has the ``openai`` package). It fails when the command
exits or stays silent about readiness past the deadline, when it prints no ``curl`` to paste, when
the answer is not a chat completion of the served model, or when the command does not stop.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

READY_S = 900.0
"""A first `make up` builds the environment before it serves (minutes)."""
STOP_S = 120.0
API = re.compile(r"^\[modelgrid\] OpenAI API at (http://\S+/v1)$")
CURL = re.compile(r"^\s+curl -s http://\S+/v1/chat/completions ")


def main(command: list[str]) -> int:
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    # A session of its own, so that SIGTERM reaches make and the server it runs.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
    try:
        url = _wait_ready(lines, time.monotonic() + READY_S)
        _chat(url)
    finally:
        returncode = _stop(proc)
    print(f"smoke: {' '.join(command)} stopped with exit code {returncode}")
    return 0


def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _wait_ready(lines: queue.Queue[str | None], deadline: float) -> str:
    url, curl = None, False
    while not (url and curl):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise SystemExit(f"smoke: not ready within {READY_S:.0f} s") from None
        if line is None:
            raise SystemExit("smoke: the command ended before it was ready")
        if match := API.match(line):
            url = match[1]
        curl = curl or bool(CURL.match(line))
    return url


def _chat(url: str) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="unused", timeout=120)
    models = [m.id for m in client.models.list().data]
    assert models, "GET /v1/models listed no model"
    model = models[0]
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello"}], max_tokens=8
    )
    content = answer.choices[0].message.content
    assert answer.object == "chat.completion" and answer.model == model, answer
    assert isinstance(content, str) and answer.usage and answer.usage.completion_tokens > 0, answer
    print(f"smoke: {model} answered {content!r} ({answer.usage.completion_tokens} tokens)")


def _stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM to the command's process group; every process in it must be gone in time."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_S
    while time.monotonic() < deadline:
        returncode = proc.poll()  # reaps the leader: a zombie still counts as in the group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:  # the group is empty
            return proc.wait() if returncode is None else returncode
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(f"smoke: still running {STOP_S:.0f} s after SIGTERM")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
