#!/usr/bin/env bash
# Per-frame latency of the media-pipeline examples (examples/c/ffmpeg_frames.c, examples/c/gst_frames.c):
# embed + assign of one frame a call, CPU, with a full-size ViT-B/32 of random weights (same FLOPs as the real
# one; python/benchmarks/random_clip.py writes it) on a generated 224×224 video. Prints a table.
#
#   scripts/bench_frames.sh [FRAMES]      (default 60; needs ffmpeg, GStreamer dev packages, python3 + numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${1:-60}
work=target/bench_frames
mkdir -p "$work"
py=python3
[ -x target/pyenv/bin/python ] && py=target/pyenv/bin/python
cargo build -q --release --lib --bin rateclust
[ -f "$work/clip/model.safetensors" ] || "$py" python/benchmarks/random_clip.py "$work/clip" >/dev/null
secs=$(( (frames + 9) / 10 ))
ffmpeg -y -loglevel error -f lavfi -i "testsrc=s=224x224:r=10:d=$secs" -frames:v "$frames" -c:v mjpeg -q:v 3 "$work/video.avi"
rm -rf "$work/frames" && mkdir -p "$work/frames"
ffmpeg -y -loglevel error -i "$work/video.avi" "$work/frames/%04d.png"
target/release/rateclust embed --quiet --device cpu --model "$work/clip" --images "$work/frames" --out "$work/x.npy" 2>/dev/null
target/release/rateclust fit --device cpu --features "$work/x.npy" --k 4 --out "$work/clusterer.safetensors" >/dev/null 2>&1
gst_flags=$(pkg-config --cflags --libs gstreamer-app-1.0 gstreamer-video-1.0)
cc -O2 -std=c11 -Iinclude examples/c/ffmpeg_frames.c -Ltarget/release -lrateclust -o "$work/ffmpeg_frames"
cc -O2 -std=c11 -Iinclude examples/c/gst_frames.c $gst_flags -Ltarget/release -lrateclust -o "$work/gst_frames"
export LD_LIBRARY_PATH="$PWD/target/release${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ff=$(ffmpeg -loglevel error -i "$work/video.avi" -f rawvideo -pix_fmt rgb24 - | "$work/ffmpeg_frames" "$work/clip" "$work/clusterer.safetensors" 224 224 | tail -1)
gs=$("$work/gst_frames" "$work/clip" "$work/clusterer.safetensors" "filesrc location=$work/video.avi ! avidemux ! jpegdec ! videoconvert ! appsink name=sink" | tail -1)
echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); ViT-B/32 (random f16 weights, computed in f32), one frame a call"
echo "| pipeline | frames | mean ms | p50 ms | p95 ms | max ms |"
echo "|---|---|---|---|---|---|"
for pair in "FFmpeg rawvideo pipe|$ff" "GStreamer appsink|$gs"; do
  name=${pair%%|*}
  line=${pair#*|}
  echo "$line" | awk -v name="$name" '{ for (i = 1; i <= NF; i++) v[$i] = $(i + 1); printf "| %s | %s | %s | %s | %s | %s |\n", name, v["n"], v["mean"], v["p50"], v["p95"], v["max"] }'
done
