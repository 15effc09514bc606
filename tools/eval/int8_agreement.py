#!/usr/bin/env python3
"""Does int8 CLIP change the clusters? Embeds the first N Fashion-MNIST *train* images (Debian's
dataset-fashion-mnist; the test split is held out and never read) with one CLIP checkpoint in f32 and in
int8 (`rateclust embed --precision`), fits each with the defaults (`rateclust fit --k K`), and prints ACC /
NMI / ARI of each against the true classes and of the int8 clusters against the f32 clusters
(`rateclust eval`), plus the embeddings' min plain and centred cosine (int8 vs f32). The noise floor to
read that agreement against: the f32 features fitted again with the next seed, against the first fit.

    python3 tools/eval/int8_agreement.py --model DIR [--n 2000] [--k 10] [--seed 42] [--work target/int8_agreement] [--reuse]

Standard library only (PNG and .npy written by hand), so it runs without a virtual environment. Without
real CLIP weights here, DIR is a random-weight checkpoint (`bench_clip --write-model DIR`): the absolute
accuracy then means little, the agreement between the precisions is the measurement.
"""
import argparse
import gzip
import json
import math
import os
import struct
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from hostile_inputs import npy_i64  # noqa: E402  (the stdlib .npy writer, one copy)

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path, n):
    with gzip.open(path, "rb") as f:
        magic, count = struct.unpack(">II", f.read(8))
        dims = [struct.unpack(">I", f.read(4))[0] for _ in range((magic & 0xFF) - 1)]
        size = 1
        for d in dims:
            size *= d
        n = min(n, count)
        return f.read(n * size), dims, n


def write_png_gray(path, w, h, pixels):
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def read_npy_f32(path):
    with open(path, "rb") as f:
        assert f.read(6) == b"\x93NUMPY"
        major = f.read(2)[0]
        hlen = struct.unpack("<H" if major == 1 else "<I", f.read(2 if major == 1 else 4))[0]
        header = f.read(hlen).decode()
        assert "'<f4'" in header and "False" in header, header
        shape = tuple(int(v) for v in header.split("(")[1].split(")")[0].split(",") if v.strip())
        data = struct.unpack("<%df" % (shape[0] * shape[1]), f.read(4 * shape[0] * shape[1]))
        return [data[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]


def cosines(a, b):
    """Min plain and min centred cosine between matching rows of a and b (centred: each set minus its mean)."""
    d = len(a[0])
    ma = [sum(r[j] for r in a) / len(a) for j in range(d)]
    mb = [sum(r[j] for r in b) / len(b) for j in range(d)]

    def cos(x, y):
        return sum(p * q for p, q in zip(x, y)) / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))

    plain = min(cos(x, y) for x, y in zip(a, b))
    centred = min(cos([p - m for p, m in zip(x, ma)], [q - m for q, m in zip(y, mb)]) for x, y in zip(a, b))
    return plain, centred


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--work", default="target/int8_agreement")
    ap.add_argument("--bin", default="target/release/rateclust")
    ap.add_argument("--reuse", action="store_true", help="keep embeddings already in --work (same model and n)")
    a = ap.parse_args()
    images = os.path.join(a.work, "images")
    os.makedirs(images, exist_ok=True)
    pix, (h, w), n = read_idx(os.path.join(DATA, "train-images-idx3-ubyte.gz"), a.n)
    labels, _, _ = read_idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz"), a.n)
    for i in range(n):
        write_png_gray(os.path.join(images, "%05d.png" % i), w, h, pix[i * w * h:(i + 1) * w * h])
    truth = os.path.join(a.work, "truth.npy")
    npy_i64(truth, list(labels[:n]))

    def run(*args):
        subprocess.run([a.bin, *args], check=True, stdout=subprocess.DEVNULL)

    def evaluate(pred, ref):
        out = subprocess.run([a.bin, "eval", "--pred", pred, "--truth", ref, "--json"], check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    emb = {}
    pred = {}
    for p in ["f32", "int8"]:
        emb[p] = os.path.join(a.work, "emb_%s.npy" % p)
        if not (a.reuse and os.path.exists(emb[p])):
            run("embed", "--model", a.model, "--images", images, "--precision", p, "--out", emb[p], "--quiet")
        clusterer = os.path.join(a.work, "clusterer_%s.safetensors" % p)
        run("fit", "--features", emb[p], "--k", str(a.k), "--seed", str(a.seed), "--out", clusterer)
        pred[p] = os.path.join(a.work, "labels_%s.npy" % p)
        run("assign", "--clusterer", clusterer, "--features", emb[p], "--out", pred[p], "--quiet")
    clusterer = os.path.join(a.work, "clusterer_f32_seed2.safetensors")
    run("fit", "--features", emb["f32"], "--k", str(a.k), "--seed", str(a.seed + 1), "--out", clusterer)
    pred["f32_seed2"] = os.path.join(a.work, "labels_f32_seed2.npy")
    run("assign", "--clusterer", clusterer, "--features", emb["f32"], "--out", pred["f32_seed2"], "--quiet")
    plain, centred = cosines(read_npy_f32(emb["f32"]), read_npy_f32(emb["int8"]))
    print("# %d Fashion-MNIST train images, k = %d, seed %d, model %s" % (n, a.k, a.seed, a.model))
    print("# int8 vs f32 embeddings: min cosine %.5f, min centred cosine %.5f" % (plain, centred))
    print("comparison\tACC\tNMI\tARI")
    for name, p, ref in [("f32 clusters vs classes", pred["f32"], truth), ("int8 clusters vs classes", pred["int8"], truth),
                         ("int8 clusters vs f32 clusters", pred["int8"], pred["f32"]),
                         ("f32, next seed, vs f32 clusters (noise floor)", pred["f32_seed2"], pred["f32"])]:
        m = evaluate(p, ref)
        print("%s\t%.4f\t%.4f\t%.4f" % (name, m["acc"], m["nmi"], m["ari"]))


if __name__ == "__main__":
    sys.exit(main())
