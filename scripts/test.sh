#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine (this is what CI runs, through .ci/run).
# Installs what the tests need: a C/C++ compiler for the C API tests, Go for the cgo example, and the pinned
# NVRTC wheel so that every CUDA kernel is compiled for sm_80 and sm_90 even without a GPU (docs/design.md §4).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v gcc >/dev/null || ! command -v g++ >/dev/null; then
  apt-get update -qq && apt-get install -y -qq gcc g++ >/dev/null
fi
# pkg-config and patchelf for the install test (tests/install_pkgconfig.rs: scripts/install.sh into a prefix).
if ! command -v pkg-config >/dev/null || ! command -v patchelf >/dev/null; then
  apt-get update -qq && apt-get install -y -qq pkg-config patchelf >/dev/null
fi
# FFmpeg and GStreamer for the media-pipeline examples (tests/media_pipelines.rs).
if ! command -v ffmpeg >/dev/null || ! command -v gst-launch-1.0 >/dev/null || ! pkg-config --exists gstreamer-app-1.0 gstreamer-video-1.0; then
  apt-get update -qq && apt-get install -y -qq ffmpeg gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev >/dev/null
fi
# Headless Chromium renders cluster's report.html (tests/report_chromium.rs).
if ! command -v chromium >/dev/null; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
# valgrind runs the C/C++ examples under memcheck (tests/sanitizers.rs).
if ! command -v valgrind >/dev/null; then
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
# Go runs the cgo binding example (tests/bindings_go.rs); python3 runs the ctypes one and is already here.
if ! command -v go >/dev/null; then
  apt-get update -qq && apt-get install -y -qq golang-go >/dev/null
fi

NVRTC_DIR="$PWD/target/nvrtc-cu12-12.8.93"
if [ ! -e "$NVRTC_DIR/nvidia/cuda_nvrtc/lib" ]; then
  echo "installing the pinned NVRTC wheel (nvidia-cuda-nvrtc-cu12==12.8.93) into $NVRTC_DIR"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target "$NVRTC_DIR" nvidia-cuda-nvrtc-cu12==12.8.93
fi
NVRTC_LIB="$NVRTC_DIR/nvidia/cuda_nvrtc/lib"
# cudarc looks for the unversioned name too; the wheel ships only libnvrtc.so.12.
[ -e "$NVRTC_LIB/libnvrtc.so" ] || ln -s libnvrtc.so.12 "$NVRTC_LIB/libnvrtc.so"
export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Makes the kernel compile test fail (instead of reporting "skipped") if NVRTC cannot be loaded.
export RATECLUST_REQUIRE_NVRTC=1

# The CUDA kernel compile check first, with its output shown, so CI's log says what it compiled.
cargo test --release --test kernels_compile -- --nocapture
log=$(mktemp)
# Tests that cannot run here (no GPU) return early after writing their name to this file
# (tests/common/mod.rs `skip`); libtest reports them as passed, so they are moved to "skipped" below.
export RATECLUST_SKIP_LOG=$(mktemp)
trap 'rm -f "$log" "$RATECLUST_SKIP_LOG"' EXIT
set +e
# --no-fail-fast: every test binary runs even after one fails, so the closing count covers the whole suite.
cargo test --release --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
run_time_skips=$(wc -l < "$RATECLUST_SKIP_LOG")
if [ "$run_time_skips" -gt 0 ]; then
  echo "skipped at run time ($run_time_skips; counted as skipped, not passed):"
  sed 's/^/  SKIPPED /' "$RATECLUST_SKIP_LOG"
fi
# The Python package and its pytest suite (issue 11; python/README.md): a virtual environment under target/, the
# package installed with pip from this checkout (setup.py's cargo step reuses this target dir's release build),
# then pytest. Its counts join the closing line as one more cargo-style "test result:" line (skipped = ignored).
PYENV="$PWD/target/pyenv"
set +e
(
  set -e
  [ -x "$PYENV/bin/python" ] || python3 -m venv "$PYENV"
  "$PYENV/bin/pip" install -q --disable-pip-version-check numpy pytest pyarrow "ray[data]"
  CARGO_TARGET_DIR="$PWD/target" "$PYENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps .
  rm -f target/pytest.xml
  # Ray's processes talk over 127.0.0.1: never through a proxy the machine may have configured for PyPI.
  no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}" NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" \
  "$PYENV/bin/python" -m pytest -rfEs -p no:cacheprovider --junitxml=target/pytest.xml python/tests
)
pystatus=$?
set -e
if [ -f target/pytest.xml ]; then
  counts=$("$PYENV/bin/python" -c 'import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot(); s = r if r.tag == "testsuite" else r.find("testsuite")
t, f, e, k = (int(s.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
print(t - f - e - k, f + e, k)' target/pytest.xml)
else
  counts="0 1 0"  # the environment or the package could not be installed: one failure
fi
read -r py_passed py_failed py_skipped <<<"$counts"
if [ "$pystatus" -ne 0 ] && [ "$py_failed" -eq 0 ]; then py_failed=1; fi
echo "test result: python. $py_passed passed; $py_failed failed; $py_skipped ignored; 0 measured; 0 filtered out (pytest python/tests)" | tee -a "$log"
[ "$pystatus" -eq 0 ] || status=1

# Coverage-guided fuzzing of every parser of untrusted bytes (scripts/fuzz.sh; libFuzzer + AddressSanitizer), each
# target for a bounded time from its committed seed corpus; one "test result:" line, a crash fails the run.
set +e
scripts/fuzz.sh "${RATECLUST_FUZZ_SECONDS:-30}" 2>&1 | tee -a "$log"
fuzzstatus=${PIPESTATUS[0]}
set -e
[ "$fuzzstatus" -eq 0 ] || status=1

# The hardening issue's hostile inputs against the release CLI under an 8 GB address-space limit (one
# "test result:" line; a case that aborts, hangs or succeeds where it should fail fails the run).
set +e
python3 scripts/hostile_inputs.py --bin target/release/rateclust 2>&1 | tee -a "$log"
hostilestatus=${PIPESTATUS[0]}
set -e
[ "$hostilestatus" -eq 0 ] || status=1

# One closing line for the whole run (cargo's last summary is the doc-tests' and usually counts 0 tests).
# Ignored tests (#[ignore]: not runnable here, or a target not met yet) count as skipped, never as passed.
awk -v rts="$run_time_skips" '/^test result:/ { passed += $4; failed += $6; skipped += $8 } END { printf "%d passed, %d failed, %d skipped\n", passed - rts, failed, skipped + rts }' "$log"
exit "$status"
