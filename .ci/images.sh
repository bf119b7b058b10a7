#!/usr/bin/env bash
# Build modelgrid's images from images/Dockerfile without a Docker engine, and run them.
#
#   .ci/images.sh base              make (or reuse) the local Debian base image; print its name
#   .ci/images.sh build TARGET...   build targets of images/Dockerfile (modelgrid, serving-cpu,
#                                   serving-apple, mlx-server) on that base; print one line per
#                                   target: "<target> <image>"
#   .ci/images.sh run ARG...        `podman run ARG...` with this script's storage and the flags
#                                   these machines need (e.g. `.ci/images.sh run --rm IMAGE`)
#   .ci/images.sh podman ARG...     any other podman command on this script's storage
#
# No registry is needed. The base is a Debian root file system made by debootstrap from Debian's
# own packages (the mirror apt uses here), imported as an image and passed to the Dockerfile as
# BASE; users building with Docker get the public debian:bookworm-slim the Dockerfile pins. The
# builder is buildah with chroot isolation (no daemon, no privileges beyond root's), storing
# images with the vfs driver (it works inside containers, where overlay mounts are refused).
#
# Everything heavy lives under $MODELGRID_CACHE/images (default ~/.cache/modelgrid), never in
# the clone: the base's root file system (debian-bookworm.tar, rebuilt when missing), the image
# store, and pip's download cache (the Dockerfile's cache mounts, under tmp/). A missing cache
# costs time only: everything is rebuilt from Debian's and PyPI's packages.
#
# Layers are not kept between builds (no --layers): with vfs every layer is a whole copy of the
# file system below it, so serving-cpu's cached layers took 18 GB and saved little time, the
# copying being most of the build. What makes a rebuild fast is pip's download cache. Images a
# build replaced are pruned after it.
#
# pip inside the builds trusts this machine's CA bundle ($MODELGRID_IMAGES_CA, default Debian's
# /etc/ssl/certs/ca-certificates.crt), copied into the local base only, for networks whose proxy
# re-signs TLS.
#
# torch's CPU build comes from PyTorch's index ($MODELGRID_TORCH_INDEX, as in .ci/venv.sh) when it
# answers; otherwise from this machine's pip configuration, downloaded here into images/wheels/
# (ignored by git) where the Dockerfile's builder finds it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${MODELGRID_CACHE:-$HOME/.cache/modelgrid}/images"
python="${PYTHON:-python3}"
torch_index="${MODELGRID_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
BASE_IMAGE="localhost/modelgrid-base/debian:bookworm"
host_ca="${MODELGRID_IMAGES_CA:-/etc/ssl/certs/ca-certificates.crt}"

usage() {
  echo "usage: $0 base | build TARGET... | run ARG... | podman ARG..." >&2
  exit 2
}
[ $# -ge 1 ] || usage
command="$1"
shift

for tool in buildah podman; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "images: $tool is not installed (Debian: apt-get install buildah podman runc debootstrap)" >&2
    exit 3
  fi
done

# One image store for buildah and podman, outside the clone.
mkdir -p "$cache/storage"
runroot="/run/containers/storage"
if [ "$(id -u)" != 0 ]; then runroot="${XDG_RUNTIME_DIR:-/tmp/containers-$(id -u)}/containers"; fi
printf '[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' "$cache/storage" "$runroot" \
  >"$cache/storage.conf.$$"
mv "$cache/storage.conf.$$" "$cache/storage.conf"
export CONTAINERS_STORAGE_CONF="$cache/storage.conf"
# buildah keeps the Dockerfile's cache mounts (pip's downloads) under $TMPDIR/buildah-cache.
mkdir -p "$cache/tmp"
export TMPDIR="$cache/tmp"

podman_() {
  # runc: crun refuses cgroups in hybrid mode on some hosts.
  podman --runtime runc "$@"
}

debian_mirror() {
  # The mirror apt uses on this machine (deb822 or one-line sources), else Debian's CDN.
  local uri
  uri="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources \
    2>/dev/null | grep -v security | head -n 1 || true)"
  if [ -z "$uri" ]; then
    uri="$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\)[[:space:]]\+bookworm[[:space:]].*/\2/p' \
      /etc/apt/sources.list 2>/dev/null | head -n 1 || true)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

make_base() {
  if podman_ image exists "$BASE_IMAGE"; then
    echo "$BASE_IMAGE"
    return
  fi
  local tarball="$cache/debian-bookworm.tar"
  if [ ! -f "$tarball" ]; then
    if ! command -v debootstrap >/dev/null 2>&1; then
      echo "images: debootstrap is not installed (Debian: apt-get install debootstrap)" >&2
      exit 3
    fi
    local mirror rootfs
    mirror="$(debian_mirror)"
    rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
    echo "images: debootstrap bookworm from $mirror" >&2
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    # As debian:bookworm-slim: no documentation, manual pages or translations in later packages.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
    # As the official image: apt keeps no downloaded packages or caches in image layers.
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    chmod 755 "$rootfs"  # mktemp made it 0700: no user but root could enter the image
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    # pip in the builds trusts what this machine trusts (e.g. a TLS-intercepting proxy's CA):
    # only this local base carries it, never the public one.
    if [ -f "$host_ca" ]; then
      mkdir -p "$rootfs/usr/local/share/modelgrid-build"
      cp "$host_ca" "$rootfs/usr/local/share/modelgrid-build/ca.crt"
    fi
    tar -C "$rootfs" -cf "$tarball.part" .
    mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
  fi
  local change=()
  if tar -tf "$tarball" ./usr/local/share/modelgrid-build/ca.crt >/dev/null 2>&1; then
    change=(--change "ENV PIP_CERT=/usr/local/share/modelgrid-build/ca.crt")
  fi
  podman_ import --quiet ${change[@]+"${change[@]}"} "$tarball" "$BASE_IMAGE" >/dev/null
  echo "$BASE_IMAGE"
}

image_name() {
  # The names the release publishes, under localhost/ (images/README.md lists them).
  local version
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")"
  case "$1" in
    modelgrid) echo "localhost/modelgrid/modelgrid:$version" ;;
    serving-cpu) echo "localhost/modelgrid/serving:$version-cpu" ;;
    serving-cuda) echo "localhost/modelgrid/serving:$version-cuda" ;;
    serving-apple) echo "localhost/modelgrid/serving:$version-apple" ;;
    mlx-server) echo "localhost/modelgrid/mlx-server:$version" ;;
    *) echo "images: unknown target $1 (modelgrid, serving-cpu, serving-apple, mlx-server)" >&2; exit 2 ;;
  esac
}

stage_torch() {
  # torch's CPU build for the builder: from PyTorch's index if it answers (the Dockerfile asks
  # it), else from this machine's pip configuration, into the build context.
  local version
  version="$(sed -n 's/.*"torch==\([^"]*\)".*/\1/p' "$root/pyproject.toml" | head -n 1)"
  mkdir -p "$root/images/wheels"
  if [ -n "$torch_index" ] && "$python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10)' "$torch_index" \
    >/dev/null 2>&1; then
    echo "$torch_index"
    return
  fi
  if ! ls "$root/images/wheels/torch-$version+cpu-"*.whl >/dev/null 2>&1; then
    echo "images: torch $version+cpu from pip's own configuration into images/wheels/" >&2
    "$python" -m pip download -q --no-deps --only-binary=:all: -d "$root/images/wheels" \
      "torch==$version+cpu" >&2
  fi
  echo ""
}

case "$command" in
  base)
    [ $# -eq 0 ] || usage
    make_base
    ;;
  build)
    [ $# -ge 1 ] || usage
    base="$(make_base)"
    index="$(stage_torch)"
    for target in "$@"; do
      name="$(image_name "$target")"
      start=$(date +%s)
      echo "images: building $target as $name" >&2
      buildah bud --isolation chroot --network host --quiet \
        --build-arg "BASE=$base" --build-arg "TORCH_INDEX=$index" \
        --target "$target" -t "$name" -f "$root/images/Dockerfile" "$root" >&2
      size="$(podman_ image inspect --format '{{.Size}}' "$name")"
      echo "images: built $name in $(( $(date +%s) - start )) s, $(( size / 1000000 )) MB" >&2
      echo "$target $name"
    done
    podman_ image prune --force >/dev/null
    ;;
  run)
    # podman's default limits can exceed what the host (or a CI container) lets runc grant, and
    # the container then fails to start (setrlimit refused): open files get this shell's own hard
    # limit, processes 4096 per user (Ray and vLLM on a small model stay far below).
    podman_ run --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=4096:4096" "$@"
    ;;
  podman)
    podman_ "$@"
    ;;
  *) usage ;;
esac
