//! The media-pipeline examples (examples/c/ffmpeg_frames.c, examples/c/gst_frames.c) on a generated test
//! video: 10 frames of a solid colour, then 10 of FFmpeg's `testsrc` pattern, as MJPEG in AVI.
//!
//! The reference is the CLI on the same frames: FFmpeg writes them as PNG, `rateclust embed` + `fit --k 2` +
//! `assign`. The FFmpeg example (raw RGB24 on a pipe, the same decoder and colour conversion as the PNGs) must
//! give the CLI's labels exactly; the GStreamer example (its own JPEG decoder and colour conversion, so the
//! pixels differ slightly) must separate the two scenes as the CLI does. Both print a latency summary.
//!
//! Needs Debian's ffmpeg, gstreamer1.0-tools, gstreamer1.0-plugins-good, libgstreamer1.0-dev and
//! libgstreamer-plugins-base1.0-dev (scripts/test.sh installs them); without them the test fails.

mod common;
use common::*;
use rateclust::io::npy::read_npy;
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: could not start ({e}); scripts/test.sh installs the media tools"));
    assert!(out.status.success(), "{what} failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cluster of every "frame I: cluster C ..." line, in order; checks the latency summary is there.
fn frame_labels(stdout: &str) -> Vec<i64> {
    assert!(stdout.contains("latency ms (embed + assign, one frame a call): n "), "{stdout}");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("frame "))
        .enumerate()
        .map(|(i, rest)| {
            let (idx, tail) = rest.split_once(": cluster ").expect("frame line");
            assert_eq!(idx.parse::<usize>().unwrap(), i);
            tail.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect()
}

/// The first 10 frames share a label, the last 10 share the other.
fn separates_scenes(labels: &[i64]) -> bool {
    labels.len() == 20 && labels[..10].iter().all(|&l| l == labels[0]) && labels[10..].iter().all(|&l| l == labels[10]) && labels[0] != labels[10]
}

fn cli(args: &[&str], dir: &Path) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_rateclust")).args(args).current_dir(dir), &format!("rateclust {}", args[0]))
}

#[test]
fn ffmpeg_and_gstreamer_examples_label_every_frame() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("media_pipelines");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("frames")).unwrap();
    let video = dir.join("video.avi");
    run(
        Command::new("ffmpeg").args(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=0xC02020:s=64x48:r=5:d=2", "-f", "lavfi", "-i", "testsrc=s=64x48:r=5:d=2"]).args([
            "-filter_complex",
            "[0][1]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-c:v",
            "mjpeg",
            "-q:v",
            "2",
        ]).arg(&video),
        "ffmpeg (making the test video)",
    );
    run(Command::new("ffmpeg").args(["-y", "-loglevel", "error", "-i"]).arg(&video).arg(dir.join("frames/%03d.png")), "ffmpeg (frames as PNG)");

    // The reference: the CLI on the PNG frames.
    let model = fixture("clip_model/tiny");
    let m = model.to_str().unwrap();
    cli(&["embed", "--device", "cpu", "--quiet", "--model", m, "--images", "frames", "--out", "x.npy"], &dir);
    cli(&["fit", "--device", "cpu", "--features", "x.npy", "--k", "2", "--seed", "3", "--out", "clusterer.safetensors"], &dir);
    cli(&["assign", "--device", "cpu", "--clusterer", "clusterer.safetensors", "--features", "x.npy", "--out", "labels.npy"], &dir);
    let reference: Vec<i64> = read_npy(&dir.join("labels.npy")).unwrap().to_i64_vec("labels").unwrap();
    assert!(separates_scenes(&reference), "the CLI did not separate the scenes: {reference:?}");
    let lib = shared_library();
    let lib_dir = lib.parent().unwrap();

    let ffmpeg_exe = build_example("c/ffmpeg_frames.c", Link::Dynamic);
    let pipe = format!(
        "ffmpeg -loglevel error -i '{}' -f rawvideo -pix_fmt rgb24 - | '{}' '{m}' clusterer.safetensors 64 48",
        video.display(),
        ffmpeg_exe.display()
    );
    let out = run(Command::new("bash").args(["-o", "pipefail", "-c", &pipe]).current_dir(&dir).env("LD_LIBRARY_PATH", lib_dir), "ffmpeg | ffmpeg_frames");
    assert_eq!(frame_labels(&out), reference, "FFmpeg example vs CLI:\n{out}");

    let gst_flags = run(Command::new("pkg-config").args(["--cflags", "--libs", "gstreamer-app-1.0", "gstreamer-video-1.0"]), "pkg-config gstreamer");
    let flags: Vec<String> = gst_flags.split_whitespace().map(str::to_string).collect();
    let gst_exe = build_example_with("c/gst_frames.c", Link::Dynamic, &flags);
    let pipeline = format!("filesrc location={} ! avidemux ! jpegdec ! videoconvert ! appsink name=sink", video.display());
    let out = run(Command::new(&gst_exe).args([m, "clusterer.safetensors", &pipeline]).current_dir(&dir).env("LD_LIBRARY_PATH", lib_dir), "gst_frames");
    let labels = frame_labels(&out);
    assert!(separates_scenes(&labels), "GStreamer example: {labels:?}\n{out}");
    assert_eq!(labels[0], reference[0], "GStreamer example and CLI name the scenes differently: {labels:?} vs {reference:?}");

    // A pipeline without the appsink, and a frame size that does not match the stream: clear errors.
    let bad = Command::new(&gst_exe).args([m, "clusterer.safetensors", "videotestsrc num-buffers=1 ! fakesink"]).env("LD_LIBRARY_PATH", lib_dir).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no appsink named"));
    let pipe = format!("ffmpeg -loglevel error -i '{}' -f rawvideo -pix_fmt rgb24 - | '{}' '{m}' clusterer.safetensors 50 50", video.display(), ffmpeg_exe.display());
    let bad = Command::new("bash").args(["-c", &pipe]).current_dir(&dir).env("LD_LIBRARY_PATH", lib_dir).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("short frame"), "{}", String::from_utf8_lossy(&bad.stderr));
}
