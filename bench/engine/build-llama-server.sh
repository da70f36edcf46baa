#!/usr/bin/env bash
# Builds the peer llama-server (CPU, Release) from the llama.cpp source that npm
# node-llama-cpp@3.22.1 ships as llama/gitRelease.bundle -- the same release as the prebuilt
# libllama that infergate-engine links -- and caches it in third_party/llama-server/.
# Fast when the cached binary's stamp matches. Used by bench/engine/run.sh (make bench) only,
# never by make test. On 2 cores the build takes several minutes.
#
#   bench/engine/build-llama-server.sh            prints the path of llama-server on success
#
# Knobs: BENCH_JOBS (default nproc).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

NLC_VERSION=3.22.1
SRC_TGZ=.cache/llama/node-llama-cpp-${NLC_VERSION}.tgz
DEST=third_party/llama-server
BIN=$DEST/bin/llama-server
JOBS=${BENCH_JOBS:-$(nproc)}
STAMP_WANT="node-llama-cpp ${NLC_VERSION} llama-server cpu-native release layout 1 host $(hostname -s 2>/dev/null || echo x) $(grep -m1 -o 'model name.*' /proc/cpuinfo | md5sum | cut -c1-8)"

die() { echo "build-llama-server: error: $*" >&2; exit 1; }

if [[ -x "$BIN" && -f "$DEST/.stamp" && "$(cat "$DEST/.stamp")" == "$STAMP_WANT" ]]; then
    echo "$ROOT/$BIN"
    exit 0
fi

# The npm tarball is cached (and sha256-checked) by scripts/fetch-llama.
[[ -f "$SRC_TGZ" ]] || scripts/fetch-llama >&2
[[ -f "$SRC_TGZ" ]] || die "$SRC_TGZ is missing (scripts/fetch-llama)"
for tool in git cmake tar; do command -v "$tool" >/dev/null || die "'$tool' is not installed"; done

mkdir -p "$DEST"
tmp=$(mktemp -d "$DEST/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "build-llama-server: extracting llama.cpp source from $SRC_TGZ" >&2
tar -xzf "$SRC_TGZ" -C "$tmp" package/llama/gitRelease.bundle
git -c advice.detachedHead=false clone --quiet "$tmp/package/llama/gitRelease.bundle" "$tmp/src" || die "cannot clone the bundle"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
echo "build-llama-server: building llama-server with $JOBS jobs (several minutes on 2 cores)" >&2
cmake -S "$tmp/src" -B "$tmp/build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF >"$tmp/cmake.log" 2>&1 ||
    { tail -n 40 "$tmp/cmake.log" >&2; die "cmake configure failed"; }
cmake --build "$tmp/build" --target llama-server -j "$JOBS" >"$tmp/build.log" 2>&1 ||
    { tail -n 40 "$tmp/build.log" >&2; die "build failed"; }
built=$(find "$tmp/build" -name llama-server -type f -perm -u+x | head -n 1)
[[ -n "$built" ]] || die "llama-server not found in the build tree"
mkdir -p "$DEST/bin"
cp "$built" "$BIN.new" && mv "$BIN.new" "$BIN"
git -C "$tmp/src" log -1 --format='%H %s' >"$DEST/SOURCE" 2>/dev/null || true
echo "$STAMP_WANT" >"$DEST/.stamp"
echo "$ROOT/$BIN"
