"""Shared fixtures of the Python tests: the repository's paths, the rateclust CLI, synthetic data and images."""

import os
import shutil
import struct
import subprocess
import zlib

import numpy as np
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TINY_CLIP = os.path.join(REPO, "tests", "fixtures", "clip_model", "tiny")
IMAGE = os.path.join(REPO, "tests", "fixtures", "clip_model", "image.png")


def cli_path():
    """The rateclust command-line tool of this checkout ($RATECLUST_CLI, else $CARGO_TARGET_DIR or target/)."""
    env = os.environ.get("RATECLUST_CLI")
    if env:
        return env
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    return os.path.join(target, "release", "rateclust")


@pytest.fixture(scope="session")
def cli():
    path = cli_path()
    if not os.path.exists(path):
        pytest.skip("the rateclust CLI is not built (%s); cargo build --release" % path)

    def run(*args, env=None):
        r = subprocess.run([path, *map(str, args)], capture_output=True, text=True,
                           env=dict(os.environ, **(env or {})), timeout=600)
        assert r.returncode == 0, "rateclust %s failed:\n%s\n%s" % (" ".join(map(str, args)), r.stdout, r.stderr)
        return r.stdout
    return run


@pytest.fixture(scope="session")
def synth(cli, tmp_path_factory):
    """(x, truth, x.npy path): an easy union of 4 subspaces from `rateclust synth` (n 600, dim 32, rank 3)."""
    d = tmp_path_factory.mktemp("synth")
    cli("synth", "--out", d / "x.npy", "--labels-out", d / "y.npy", "--n", 600, "--dim", 32, "--k", 4, "--rank", 3,
        "--noise", 0.02, "--seed", 3)
    return np.load(d / "x.npy"), np.load(d / "y.npy"), str(d / "x.npy")


def png_bytes(rgb):
    """A PNG (8-bit RGB, no filter) of an H×W×3 uint8 array, written without any imaging library."""
    rgb = np.ascontiguousarray(rgb, np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def synthetic_image(i, size=40):
    """Image i of 4 families (horizontal / vertical stripes, a checkerboard, a plain colour) with varying colour."""
    rng = np.random.default_rng(i)
    y, x = np.mgrid[0:size, 0:size]
    family = i % 4
    mask = [(y // 5) % 2, (x // 5) % 2, ((x // 8) + (y // 8)) % 2, np.zeros_like(x)][family].astype(bool)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    img = np.where(mask[..., None], a, b).astype(np.uint8)
    return img


def write_image_collection(folder, n, bad=()):
    """n PNG files in two sub-folders of `folder` (plus undecodable files at the indices in `bad`); their paths."""
    paths = []
    for i in range(n):
        sub = os.path.join(str(folder), "part%d" % (i % 2))
        os.makedirs(sub, exist_ok=True)
        p = os.path.join(sub, "img%04d.png" % i)
        with open(p, "wb") as f:
            f.write(b"not an image" if i in bad else png_bytes(synthetic_image(i)))
        paths.append(p)
    return sorted(paths)
