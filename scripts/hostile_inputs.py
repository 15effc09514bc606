#!/usr/bin/env python3
"""Hostile inputs against the release CLI, as a careful user would try them: each case runs under an address-space
limit (`ulimit -v 8000000`) and a time limit, and the table printed at the end gives its exit code, wall time and
first error line. Every case must end with a clear error or a correct result: no abort (exit 134), no kill, no
hang. Exit status 1 if any case did not.

    scripts/hostile_inputs.py [--bin target/release/rateclust]

Builds nothing: run `cargo build --release` first (or pass --bin). Uses the tiny fixture CLIP model.
"""
import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "tests/fixtures/clip_model/tiny")
LIMIT_BYTES = 8_000_000 * 1024  # ulimit -v 8000000
TIMEOUT_S = 120


def png(width, height, idat):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def valid_blank_png(width, height):
    """A real, complete PNG of zeros: every row is filter byte 0 + width zero bytes, deflated."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    parts = [comp.compress(row) for _ in range(height)]
    parts.append(comp.flush())
    return png(width, height, b"".join(parts))


def lying_jpeg():
    """A small real JPEG (a fixture) whose frame header is rewritten to claim 10000 × 10000."""
    data = bytearray(open(os.path.join(ROOT, "tests/fixtures/clip_io/preprocess/j420.jpg"), "rb").read())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 10000, 10000)
    return bytes(data)


def npy_f32(path, rows):
    n, d = len(rows), len(rows[0])
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        for r in rows:
            f.write(struct.pack("<%df" % d, *r))


def npy_i64(path, values):
    header = "{'descr': '<i8', 'fortran_order': False, 'shape': (%d,), }" % len(values)
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%dq" % len(values), *values))


def run(binary, args, tmp):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
    t0 = time.time()
    try:
        p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=TIMEOUT_S, preexec_fn=limit)
        code, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired:
        code, err = "timeout", ""
    secs = time.time() - t0
    first = next((l for l in err.splitlines() if l.startswith("error")), err.strip().splitlines()[-1] if err.strip() else "")
    return code, secs, first.replace(tmp + "/", "")[:170]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/rateclust"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rateclust-hostile-")
    P = lambda *p: os.path.join(tmp, *p)

    def images_dir(name, files):
        d = P(name)
        os.makedirs(d)
        for fname, data in files.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
        return d

    cases = []  # (case, expected outcome, args, check(code) -> bool)
    # Decompression bombs and lying headers, each the only image of a folder (embed then fails: nothing decodable).
    bomb_header = png(100_000, 100_000, zlib.compress(b"\x00" * 50_000))
    cases.append(("PNG header claiming 100000×100000 (51 KB)", "refused from the header",
                  ["embed", "--model", TINY, "--images", images_dir("bomb", {"bomb.png": bomb_header}), "--out", P("b.npy"), "--quiet"],
                  lambda c: c == 1))
    valid_bomb = valid_blank_png(15_000, 15_000)
    cases.append(("valid blank PNG 15000×15000 (%d KB), over Pillow's limit" % (len(valid_bomb) // 1024), "refused from the header",
                  ["embed", "--model", TINY, "--images", images_dir("valid_bomb", {"big.png": valid_bomb}), "--out", P("v.npy"), "--quiet"],
                  lambda c: c == 1))
    cases.append(("JPEG frame header claiming 10000×10000 (1 KB)", "refused: data cannot fill the frame",
                  ["embed", "--model", TINY, "--images", images_dir("lying", {"lie.jpg": lying_jpeg()}), "--out", P("l.npy"), "--quiet"],
                  lambda c: c == 1))
    # One bad file among good ones: listed and skipped.
    good = valid_blank_png(40, 30)
    cases.append(("bomb among 2 good images", "bomb skipped and listed, 2 rows",
                  ["embed", "--model", TINY, "--images", images_dir("mixed", {"a.png": good, "b.png": good, "bomb.png": bomb_header}),
                   "--out", P("m.npy"), "--quiet"],
                  lambda c: c == 0))
    # Tokenizer: one word of 1 MB, and a million short words.
    with open(P("word.txt"), "w") as f:
        f.write("x" * 1_000_000 + "\n")
    cases.append(("text: one word of 1 MB", "embedded (truncated to 77 tokens)",
                  ["embed", "--model", TINY, "--texts", P("word.txt"), "--out", P("w.npy"), "--quiet"], lambda c: c == 0))
    with open(P("words.txt"), "w") as f:
        f.write("a " * 1_000_000 + "\n")
    cases.append(("text: a million short words", "embedded (truncated to 77 tokens)",
                  ["embed", "--model", TINY, "--texts", P("words.txt"), "--out", P("ws.npy"), "--quiet"], lambda c: c == 0))
    # A preprocessor config that makes every pixel non-finite.
    model2 = P("model_rescale")
    shutil.copytree(TINY, model2)
    cfg = json.load(open(os.path.join(model2, "preprocessor_config.json")))
    cfg["rescale_factor"] = 1e300
    json.dump(cfg, open(os.path.join(model2, "preprocessor_config.json"), "w"))
    cases.append(("preprocessor rescale_factor 1e300", "refused at load",
                  ["embed", "--model", model2, "--images", images_dir("ok", {"a.png": good}), "--out", P("r.npy"), "--quiet"],
                  lambda c: c == 1))
    # Features of absurd magnitude, and labels with 100k distinct values.
    npy_f32(P("huge.npy"), [[1e20 * ((i * 7 + j) % 5 - 2) for j in range(8)] for i in range(300)])
    cases.append(("fit on features of magnitude 1e20", "fitted after the default L2 normalisation, or a clear error",
                  ["fit", "--features", P("huge.npy"), "--k", "3", "--out", P("huge.safetensors"), "--quiet"], lambda c: c in (0, 1)))
    cases.append(("assign with that clusterer on those features", "labels written (the clusterer is not corrupt)",
                  ["assign", "--clusterer", P("huge.safetensors"), "--features", P("huge.npy"), "--out", P("huge_labels.npy"), "--quiet"],
                  lambda c: c == 0))
    npy_i64(P("pred.npy"), list(range(100_000)))
    npy_i64(P("truth.npy"), [(i * 7) % 100_000 for i in range(100_000)])
    cases.append(("eval with 100k distinct labels", "scored without a dense 100k² table, or a clear error",
                  ["eval", "--pred", P("pred.npy"), "--truth", P("truth.npy")], lambda c: c in (0, 1)))
    # Outputs: two options naming one file; --out through a symlink.
    npy_f32(P("x.npy"), [[float((i * j) % 7) for j in range(8)] for i in range(200)])
    cases.append(("assign --out X --confidence X", "usage error (exit 2): one would replace the other",
                  ["assign", "--clusterer", P("huge.safetensors"), "--features", P("x.npy"), "--out", P("same.npy"), "--confidence", P("same.npy")],
                  lambda c: c == 2))
    os.symlink(P("target.npy"), P("link.npy"))
    cases.append(("synth --out LINK (a symlink)", "written through the link, the link kept",
                  ["synth", "--out", P("link.npy"), "--labels-out", P("y.npy"), "--n", "100", "--quiet"],
                  lambda c: c == 0 and os.path.islink(P("link.npy")) and os.path.exists(P("target.npy"))))
    cases.append(("fit --k 1000000 on 300 points", "usage or argument error",
                  ["fit", "--features", P("x.npy"), "--k", "1000000", "--out", P("k.safetensors")], lambda c: c in (1, 2)))

    print("machine: %d cores; limits: ulimit -v %d, %d s per case; binary %s" % (os.cpu_count(), LIMIT_BYTES // 1024, TIMEOUT_S, a.bin))
    print()
    print("| case | expected | exit | s | message |")
    print("|---|---|---|---|---|")
    bad = 0
    for name, expected, args, check in cases:
        code, secs, msg = run(a.bin, args, tmp)
        ok = code != "timeout" and check(code)
        bad += not ok
        print("| %s | %s | %s%s | %.1f | %s |" % (name, expected, code, "" if ok else " **UNEXPECTED**", secs, msg.replace("|", "\\|")))
    shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("%d of %d cases as expected" % (len(cases) - bad, len(cases)))
    # The same counts as a cargo-style line, so scripts/test.sh's closing summary includes these cases.
    print("test result: hostile. %d passed; %d failed; 0 ignored; 0 measured; 0 filtered out (scripts/hostile_inputs.py)"
          % (len(cases) - bad, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
