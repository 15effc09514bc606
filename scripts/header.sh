#!/usr/bin/env bash
# Regenerates the committed C header include/rateclust.h from the Rust sources (cbindgen, through build.rs).
# Ordinary builds leave the source tree alone; tests/c_api_core.rs `header_is_current` fails until the header
# matches the sources, so run this after changing the C ABI and commit the result (and CHANGELOG.md if the
# change is incompatible: bump RATECLUST_ABI_VERSION in src/lib.rs and cbindgen.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
RATECLUST_WRITE_HEADER=1 cargo build -q --lib
git --no-pager diff --stat -- include/rateclust.h
