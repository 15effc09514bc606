"""Throughput of each stage of the pipeline on this machine, through the real package (docs/scale.md):

  1. embed: image files per second with a full-size ViT-B/32 (random weights; random_clip.py), from PNG files
     (decode + preprocess + the vision tower), and texts per second;
  2. fit: wall time of a default fit (k given) on samples of several sizes at dim 512;
  3. assign: points per second on N × 768 features, the package's call vs the same call from C (assign_c.c);
  4. the Ray pipeline on a local cluster vs the single-process CLI (embed + fit + assign) on the same images.

    python python/benchmarks/bench_stages.py WORK_DIR [--quick] [--stages=embed,fit,assign,ray]
Prints one `BENCH<TAB>name<TAB>value<TAB>unit` line per measurement.
"""
import os
import subprocess
import sys
import time

import numpy as np

import rateclust

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python", "tests"))
from conftest import png_bytes, synthetic_image  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
CLI = os.path.join(TARGET, "release", "rateclust")


def report(name, value, unit):
    print("BENCH\t%s\t%.4g\t%s" % (name, value, unit), flush=True)


def best_of(reps, f):
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main(work, quick, stages):
    os.makedirs(work, exist_ok=True)
    clip_dir = os.path.join(work, "vitb32")
    if not os.path.exists(os.path.join(clip_dir, "model.safetensors")):
        subprocess.check_call([sys.executable, os.path.join(HERE, "random_clip.py"), clip_dir])
    n_img = 64 if quick else 256
    img_dir = os.path.join(work, "images")
    paths = []
    for i in range(n_img):
        p = os.path.join(img_dir, "img%05d.png" % i)
        if not os.path.exists(p):
            os.makedirs(img_dir, exist_ok=True)
            with open(p, "wb") as f:
                f.write(png_bytes(synthetic_image(i, size=320)))
        paths.append(p)
    report("threads", rateclust.cpu_threads(), "threads")

    # 1. embed
    if "embed" in stages:
        with rateclust.Model(clip_dir, device="cpu") as m:
            m.embed_image_files(paths[:8])
            t = best_of(1, lambda: m.embed_image_files(paths))
            report("embed_images_vitb32", n_img / t, "img/s")
            texts = ["a photo of a %s." % w for w in rateclust.default_vocabulary()[:256]]
            t = best_of(1, lambda: m.embed_texts(texts))
            report("embed_texts_vitb32", len(texts) / t, "texts/s")
            import resource
            report("rss_after_clip_load_and_embed", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "MiB")

    # 2. fit (default settings, k = 10) on samples of a 10-subspace union at dim 512
    synth = os.path.join(work, "synth512.npy")
    sizes = [2000, 5000] if quick else [2000, 5000, 10000, 20000]
    if not os.path.exists(synth):
        subprocess.check_call([CLI, "synth", "--out", synth, "--labels-out", synth + ".y.npy", "--n", str(max(sizes)),
                               "--dim", "512", "--k", "10", "--rank", "8", "--noise", "0.05", "--seed", "1"],
                              stdout=subprocess.DEVNULL)
    x = np.load(synth)
    for s in sizes if "fit" in stages else []:
        t = best_of(1, lambda: rateclust.Clusterer.fit(x[:s], k=10).close())
        report("fit_default_k10_dim512_n%d" % s, t, "s")

    # 3. assign, N × 768: the package vs C
    if "assign" in stages:
        assign_overhead(work, quick)
    if "ray" in stages:
        ray_vs_cli(work, paths, clip_dir, n_img)


def assign_overhead(work, quick):
    n = 200_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((10, 16, 768)).astype(np.float32)
    which = rng.integers(0, 10, n)
    feats = 0.05 * rng.standard_normal((n, 768), dtype=np.float32)
    for j in range(10):
        rows = np.flatnonzero(which == j)
        feats[rows] += rng.standard_normal((len(rows), 16), dtype=np.float32) @ basis[j]
    model = os.path.join(work, "assign768.safetensors")
    with rateclust.Clusterer.fit(feats[:5000], k=10) as c:
        c.save(model)
    raw = os.path.join(work, "x768.f32")
    feats.tofile(raw)
    exe = os.path.join(work, "assign_c")
    subprocess.check_call(["cc", "-O2", "-I" + os.path.join(REPO, "include"), os.path.join(HERE, "assign_c.c"),
                           "-L" + os.path.dirname(rateclust.library_path()), "-lrateclust", "-o", exe])
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(rateclust.library_path()))
    c_times = []
    py_times = []
    with rateclust.Clusterer.load(model) as c:
        for _ in range(3):  # interleaved, so that load from the other engineer's builds hits both alike
            out = subprocess.run([exe, model, raw, str(n), "768", "1"], env=env, capture_output=True, text=True,
                                 check=True).stdout.split()
            c_times.append(float(out[0]))
            py_times.append(best_of(1, lambda: c.assign(feats, device="cpu")))
    report("assign_768_c_n%d" % n, n / min(c_times), "points/s")
    report("assign_768_python_n%d" % n, n / min(py_times), "points/s")
    report("assign_768_python_overhead", 100 * (min(py_times) / min(c_times) - 1), "%")
    os.remove(raw)



def ray_vs_cli(work, paths, clip_dir, n_img):
    """4. Ray pipeline vs single-process CLI on the same images (k 10, sample = all images)."""
    lst = os.path.join(work, "images.txt")
    with open(lst, "w") as f:
        f.write("".join(p + "\n" for p in paths))
    t0 = time.perf_counter()
    subprocess.check_call([CLI, "embed", "--model", clip_dir, "--images", lst, "--out", os.path.join(work, "e.npy"),
                           "--device", "cpu", "--quiet"], stdout=subprocess.DEVNULL)
    subprocess.check_call([CLI, "fit", "--features", os.path.join(work, "e.npy"), "--k", "10", "--out",
                           os.path.join(work, "cli.safetensors")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.check_call([CLI, "assign", "--clusterer", os.path.join(work, "cli.safetensors"), "--features",
                           os.path.join(work, "e.npy"), "--out", os.path.join(work, "l.npy")], stdout=subprocess.DEVNULL)
    t_cli = time.perf_counter() - t0
    report("cli_embed_fit_assign_%d_images" % n_img, n_img / t_cli, "img/s")
    out = os.path.join(work, "ray_out")
    subprocess.run(["rm", "-rf", out], check=True)
    t0 = time.perf_counter()
    subprocess.check_call([sys.executable, "-m", "rateclust.ray_pipeline", "--list", lst, "--model", clip_dir,
                           "--k", "10", "--out", out, "--sample", str(n_img), "--shard-size", "32", "--workers", "2",
                           "--threads-per-worker", "1", "--fit-cpus", "2", "--num-cpus", "2", "--no-names"],
                          stderr=subprocess.DEVNULL, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    t_ray = time.perf_counter() - t0
    report("ray_pipeline_%d_images_2x1_threads" % n_img, n_img / t_ray, "img/s (incl. Ray start-up)")


if __name__ == "__main__":
    only = [a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith("--stages=")]
    main(sys.argv[1], "--quick" in sys.argv[2:], only[0].split(",") if only else ["embed", "fit", "assign", "ray"])
