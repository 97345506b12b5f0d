#!/usr/bin/env bash
# `make docker-test`: build the serving image without reaching an image registry or the package index
# from inside the build, then run the tests marked `docker` against it (tests/serve/test_docker.py).
#
#   1. docker: use a reachable daemon, else (as root) install Debian's docker.io and start dockerd by hand
#   2. base image: $BASE_IMAGE (python:3.11-slim) if present or pullable, else a local Debian bookworm
#      (debootstrap --variant=minbase + python3 + python3-venv, `docker import`), built once and kept
#   3. wheels: `pip wheel -r requirements.txt` on this machine into ./wheels (kept until requirements.txt
#      changes); the image installs from them with --no-index
#   4. docker build --build-arg BASE_IMAGE=... --build-arg OFFLINE=1, then pytest -m docker
#
# Environment: PYTHON (runs pip and pytest), IMAGE (tag to build, default listing-search:test),
# BASE_IMAGE, DEBIAN_MIRROR (default: the first Debian URI in apt's sources), DOCKER_TEST_CACHE.
# Arguments go to pytest; `--build-only` builds the image and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
IMAGE=${IMAGE:-listing-search:test}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
LOCAL_BASE=listing-search-base:bookworm-gomp  # libgomp1: LightGBM (the LambdaMART ranker)
CACHE=${DOCKER_TEST_CACHE:-/var/tmp/listing-search-docker}
WHEELS=wheels
export DEBIAN_FRONTEND=noninteractive

say() { echo "docker-test: $*" >&2; }
die() { say "$*"; exit 1; }
as_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (run make docker-test as root, or start dockerd yourself)"; }

apt_install() {  # apt_install COMMAND PACKAGE...: the packages whose command is missing
    local pkgs=()
    while [ $# -gt 0 ]; do
        command -v "$1" >/dev/null 2>&1 || [[ " ${pkgs[*]} " == *" $2 "* ]] || pkgs+=("$2")
        shift 2
    done
    [ ${#pkgs[@]} -eq 0 ] && return
    as_root "installing ${pkgs[*]}"
    say "installing ${pkgs[*]}"
    apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; }
}

ensure_docker() {
    docker info >/dev/null 2>&1 && return
    apt_install dockerd docker.io docker docker.io
    as_root "starting dockerd"
    mkdir -p "$CACHE"
    say "starting dockerd (overlay2, default bridge); log in $CACHE/dockerd.log"
    nohup dockerd --storage-driver=overlay2 >"$CACHE/dockerd.log" 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
    tail -20 "$CACHE/dockerd.log" >&2
    die "dockerd did not answer within 60 s"
}

debian_mirror() {
    [ -n "${DEBIAN_MIRROR:-}" ] && { echo "$DEBIAN_MIRROR"; return; }
    local uri
    uri=$(grep -hoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources \
          /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+' | head -1 || true)
    echo "${uri:-http://deb.debian.org/debian}"
}

build_local_base() {
    apt_install debootstrap debootstrap
    as_root "debootstrap"
    local root
    root=$(mktemp -d "${CACHE}/rootfs.XXXXXX")
    say "building $LOCAL_BASE with debootstrap (once; a few minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libgomp1 \
        bookworm "$root" "$(debian_mirror)" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap.log" >&2; rm -rf "$root"; die "debootstrap failed"; }
    # What python:3.11-slim also leaves out: apt lists and caches, manuals, translations.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/log/*
    find "$root"/usr/share/doc -type f ! -name copyright -delete
    tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$root"
}

ensure_base() {  # prints the base image to build on
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 || timeout 120 docker pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
        echo "$BASE_IMAGE"; return
    fi
    say "cannot pull $BASE_IMAGE: using the local $LOCAL_BASE"
    docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 || build_local_base
    echo "$LOCAL_BASE"
}

ensure_wheels() {  # every wheel the image installs: requirements + the build backend the package needs
    local stamp="$WHEELS/.requirements.sha256" want
    want=$(sha256sum requirements.txt | cut -d' ' -f1)
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return
    say "pip wheel -r requirements.txt into ./$WHEELS"
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    "$PYTHON" -m pip wheel -q --disable-pip-version-check -w "$WHEELS" -r requirements.txt "setuptools>=68" wheel \
        >"$CACHE/pip-wheel.log" 2>&1 || { tail -20 "$CACHE/pip-wheel.log" >&2; die "pip wheel failed"; }
    echo "$want" >"$stamp"
}

main() {
    mkdir -p "$CACHE"
    local started=$SECONDS base
    ensure_docker
    base=$(ensure_base)
    ensure_wheels
    say "docker build -t $IMAGE (BASE_IMAGE=$base, offline)"
    docker build -t "$IMAGE" --build-arg BASE_IMAGE="$base" --build-arg OFFLINE=1 . >"$CACHE/build.log" 2>&1 \
        || { tail -30 "$CACHE/build.log" >&2; die "docker build failed (log: $CACHE/build.log)"; }
    say "image $IMAGE: $(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'),"\
" ready after $((SECONDS - started)) s"
    [ "${1:-}" = --build-only ] && return
    LISTING_SEARCH_IMAGE="$IMAGE" exec "$PYTHON" -m pytest -q -m docker tests/serve/test_docker.py "$@"
}

main "$@"
