"""Clustering (and, given a CLIP model directory, embedding) from Python through examples/python/rateclust.py:
fit on a synthetic union of 4 random 3-dimensional subspaces of R^24 → assign → metrics → save → load → same
labels → select k, errors raised as RateclustError; then texts and an image embedded and the cluster named.
Needs only python3 and the shared library (no numpy). From the repository root, after `cargo build --release`:

    python3 examples/python/demo.py [WORK_DIR [CLIP_MODEL_DIR IMAGE]]

(RATECLUST_LIB=/path/to/librateclust.so overrides where the library is loaded from.)
"""
import math
import os
import random
import sys
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rateclust  # noqa: E402

N, DIM, K, RANK = 800, 24, 4, 3


def union_of_subspaces(seed=12345):
    """Row-major float32 points on subspace i % K (orthonormal bases by Gram–Schmidt) plus a little noise."""
    rng = random.Random(seed)
    bases = []
    for _ in range(K):
        basis = []
        for _ in range(RANK):
            v = [rng.gauss(0, 1) for _ in range(DIM)]
            for u in basis:
                dot = sum(a * b for a, b in zip(v, u))
                v = [a - dot * b for a, b in zip(v, u)]
            norm = math.sqrt(sum(a * a for a in v))
            basis.append([a / norm for a in v])
        bases.append(basis)
    x, truth = array("f"), array("q")
    for i in range(N):
        j = i % K
        row = [0.02 * rng.gauss(0, 1) for _ in range(DIM)]
        for u in bases[j]:
            a = rng.gauss(0, 1) / math.sqrt(RANK)
            row = [r + a * b for r, b in zip(row, u)]
        x.extend(row)
        truth.append(j)
    return x, truth


def expect_error(status, call, *args):
    try:
        call(*args)
    except rateclust.RateclustError as e:
        assert e.status == status, "expected status %d, got %r" % (status, e)
        print("expected error (%s): %s" % (e.status_name, e.message))
        return
    raise AssertionError("%s did not fail" % call.__name__)


def embed_and_name(model_dir, image):
    captions = ["a photo of a cat", "a photo of a dog", "a diagram"]
    with rateclust.Model(model_dir, device="cpu") as model:
        calls = []
        texts, n_text, dim = model.embed_texts(captions, progress=lambda stage, done, total: calls.append(stage))
        images, n_img, _ = model.embed_image_files([image, image])
        with open(image, "rb") as f:
            encoded, _, _ = model.embed_images_encoded([f.read()])
        # Same image; only the batch composition differs (1 vs 2 rows), so rounding may differ by an ulp.
        assert max(abs(a - b) for a, b in zip(encoded, images[:dim])) < 1e-5, "encoded bytes and file differ"
        # Raw frames as a media pipeline hands them over: the same picture as RGB8 (rows padded to a larger
        # stride) and as BGR8 embeds identically.
        w, h, stride = 50, 40, 50 * 3 + 7
        rgb, bgr = bytearray(h * stride), bytearray(h * stride)
        for yy in range(h):
            for xx in range(w):
                r, g, b = xx * 5 % 256, yy * 6 % 256, xx * yy % 256
                o = yy * stride + 3 * xx
                rgb[o:o + 3], bgr[o:o + 3] = bytes((r, g, b)), bytes((b, g, r))
        fr, n_fr, _ = model.embed_frames([(rgb, w, h, stride, "rgb8"), (bgr, w, h, stride, "bgr8")])
        assert fr[:dim] == fr[dim:], "RGB8 and BGR8 frames of one picture embed differently"
        print("embedded %d raw frames (RGB8 == BGR8)" % n_fr)
        print("embedded %d texts and %d images of dim %d (progress stages: %s)"
              % (n_text, n_img, dim, ",".join(sorted(set(calls)))))
        for c, caption in enumerate(captions):
            cos = sum(images[t] * texts[c * dim + t] for t in range(dim))
            print('cos(image, "%s") = %.4f' % (caption, cos))
        (caption, score), = rateclust.label_clusters(images, dim, [0, 0], 1, texts)
        print('cluster 0 is named "%s" (vote share %.3f)' % (captions[caption], score))

        # An exception raised in a progress callback cancels the call and reaches the caller unchanged.
        def stop(stage, done, total):
            raise KeyboardInterrupt("stop here")
        try:
            model.embed_texts(captions, progress=stop)
            raise AssertionError("the raising callback did not stop embed_texts")
        except KeyboardInterrupt as e:
            print("callback exception propagated: %s" % e)
        expect_error(rateclust.IO, model.embed_image_files, ["/nonexistent/image.png"])


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    print("rateclust %s; %s" % (rateclust.version(), rateclust.device_info()))
    vocabulary = rateclust.default_vocabulary()
    print("default vocabulary: %d names, first '%s'" % (len(vocabulary), vocabulary[0]))
    x, truth = union_of_subspaces()

    # Small head and few steps: this toy problem needs nothing like the CIFAR-10 defaults.
    params = rateclust.fit_params(k=K, hidden=96, zdim=24, batch=200, steps=120, warmup=8, lr=1e-3,
                                  lr_cluster=1e-3, spectral_sample=400)
    stages = []
    with rateclust.Clusterer.fit(x, DIM, params, device="cpu",
                                 progress=lambda stage, done, total: stages.append(stage)) as clusterer:
        print("fitted: k = %d, dim = %d, progress calls: %d" % (clusterer.k, clusterer.dim, len(stages)))
        labels, confidence = clusterer.assign(x)
        acc, nmi, ari = rateclust.metrics(labels, truth)
        print("metrics: acc %.4f nmi %.4f ari %.4f" % (acc, nmi, ari))
        print("confidence: min %.4f mean %.4f" % (min(confidence), sum(confidence) / len(confidence)))

        path = os.path.join(work, "rateclust_python_demo.safetensors")
        clusterer.save(path)
    with rateclust.Clusterer.load(path) as loaded:
        os.remove(path)
        again, _ = loaded.assign(memoryview(x))  # any float32 buffer works, used in place
        assert again == labels, "the loaded clusterer labels differently"
        print("save/load: same labels for all %d points" % len(again))
        curve, best = loaded.select_k(x, [2, 4, 6], device="cpu")
        print("select-k: L(2) %.1f L(4) %.1f L(6) %.1f best %d" % (curve[0], curve[1], curve[2], best))
        loaded.set_k(x, best, device="cpu")
        assert loaded.k == best
        print("set_k: now %d clusters" % loaded.k)

        expect_error(rateclust.INVALID_ARGUMENT, loaded.assign, array("f", bytes(4 * 10 * (DIM + 1))), DIM + 1)
        bad = array("f", x)
        bad[5] = float("nan")
        expect_error(rateclust.NON_FINITE, rateclust.Clusterer.fit, bad, DIM, params)
    expect_error(rateclust.IO, rateclust.Clusterer.load, os.path.join(work, "does-not-exist.safetensors"))
    try:
        loaded.k
        raise AssertionError("a closed clusterer was usable")
    except rateclust.RateclustError as e:
        print("expected error (%s): %s" % (e.status_name, e.message))

    if len(sys.argv) > 3:
        embed_and_name(sys.argv[2], sys.argv[3])
    print("ok")


if __name__ == "__main__":
    main()
