#!/usr/bin/env bash
# build-test-images.sh — build (or reuse) the shared test images for
# trustyard's tests into a fixed cache folder.
#
# Usage: scripts/build-test-images.sh
# Env:   TRUSTYARD_TEST_IMAGES  cache folder (default /var/cache/trustyard/test-images)
#        TRUSTYARD_SHARED_DIR   folder holding tools/make-test-images; used when
#                               set, otherwise <repo>/../shared (the repo is
#                               checked out as <something>/main, shared/ beside it)
# Prints the cache folder on stdout. Skips the build when every image's
# .info.json already exists. A flock on the cache folder makes parallel callers
# wait for one build instead of building twice.
set -euo pipefail

IMAGES=(debian-minbase python-app node-app go-binary multi-arch big-layer)
OUT="${TRUSTYARD_TEST_IMAGES:-/var/cache/trustyard/test-images}"

log() { printf '[build-test-images] %s\n' "$*" >&2; }

find_tool() {
  local dir
  # The lab's shared folder: explicit, beside the checkout, or the lab's usual place.
  for dir in ${TRUSTYARD_SHARED_DIR:+"$TRUSTYARD_SHARED_DIR"} "$(dirname "$0")/../../shared" /work/shared; do
    if [ -x "$dir/tools/make-test-images" ]; then
      printf '%s\n' "$dir/tools/make-test-images"
      return 0
    fi
  done
  log "make-test-images not found (set TRUSTYARD_SHARED_DIR to the shared lab folder)"
  return 1
}

all_built() {
  local name
  for name in "${IMAGES[@]}"; do
    [ -f "$OUT/$name.info.json" ] || return 1
  done
}

build() {
  local tool
  tool="$(find_tool)"
  log "building test images into $OUT (takes a few minutes the first time)"
  "$tool" "$OUT" "${IMAGES[@]}" >&2
}

main() {
  mkdir -p "$OUT"
  if ! all_built; then
    exec 9>"$OUT/.build-test-images.lock"
    flock 9
    if all_built; then log "built meanwhile by another caller"; else build; fi
    flock -u 9
  fi
  all_built || { log "images still missing in $OUT"; exit 1; }
  printf '%s\n' "$OUT"
}

main "$@"
