"""The rateclust Python package (python/rateclust; `pip install .` from the repository root) in one script:
fit on a synthetic union of 4 random 3-dimensional subspaces of R^24 → assign → metrics → save → load → same
labels → select k → set k, errors raised as RateclustError; then texts, image files, encoded bytes and raw
pixel arrays embedded with a CLIP model and the cluster named. The same walk-through as the C++ and Go demos.

    pip install .                      # once, from the repository root (builds librateclust.so with cargo)
    python examples/python/demo.py [WORK_DIR [CLIP_MODEL_DIR IMAGE]]

(RATECLUST_LIB=/path/to/librateclust.so overrides the library shipped in the package.)
For collections too big for one process, see `python -m rateclust.ray_pipeline --help`.
"""
import os
import sys

import numpy as np

import rateclust

N, DIM, K, RANK = 800, 24, 4, 3


def union_of_subspaces(seed=12345):
    """float32 points on subspace i % K (orthonormal bases from QR) plus a little noise, and their truth."""
    rng = np.random.default_rng(seed)
    bases = [np.linalg.qr(rng.standard_normal((DIM, RANK)))[0] for _ in range(K)]
    truth = np.arange(N) % K
    coef = rng.standard_normal((N, RANK)) / np.sqrt(RANK)
    x = np.stack([bases[j] @ c for j, c in zip(truth, coef)]) + 0.02 * rng.standard_normal((N, DIM))
    return x.astype(np.float32), truth


def expect_error(status, call, *args):
    try:
        call(*args)
    except rateclust.RateclustError as e:
        assert e.status == status, "expected status %s, got %r" % (status, e)
        print("expected error (%s): %s" % (e.status_name, e.message))
        return
    raise AssertionError("%s did not fail" % call.__name__)


def embed_and_name(model_dir, image):
    captions = ["a photo of a cat", "a photo of a dog", "a diagram"]
    with rateclust.Model(model_dir, device="cpu") as model:
        calls = []
        texts = model.embed_texts(captions, progress=lambda stage, done, total: calls.append(stage))
        images = model.embed_image_files([image, image])
        with open(image, "rb") as f:
            encoded = model.embed_images_encoded([f.read()])
        # Same image; only the batch composition differs (1 vs 2 rows), so rounding may differ by an ulp.
        assert np.abs(encoded[0] - images[0]).max() < 1e-5, "encoded bytes and file differ"
        # Raw pixels as a media pipeline hands them over: the same picture as RGB (rows padded to a larger
        # stride, read in place) and as BGR embeds identically.
        yy, xx = np.mgrid[0:40, 0:50]
        rgb = np.stack([xx * 5 % 256, yy * 6 % 256, xx * yy % 256], axis=2).astype(np.uint8)
        padded = np.zeros((40, 57, 3), np.uint8)
        padded[:, :50] = rgb
        fr = model.embed_image_arrays([padded[:, :50]])
        fr_bgr = model.embed_image_arrays([rgb[:, :, ::-1]], channel_order="bgr")
        assert np.array_equal(fr, fr_bgr), "RGB8 and BGR8 frames of one picture embed differently"
        print("embedded %d raw frames (RGB8 == BGR8)" % (len(fr) + len(fr_bgr)))
        print("embedded %d texts and %d images of dim %d (progress stages: %s)"
              % (len(texts), len(images), images.shape[1], ",".join(sorted(set(calls)))))
        for caption, cos in zip(captions, texts @ images[0]):
            print('cos(image, "%s") = %.4f' % (caption, cos))
        caption, score = rateclust.label_clusters(images, [0, 0], 1, texts)
        print('cluster 0 is named "%s" (vote share %.3f)' % (captions[caption[0]], score[0]))

        # An exception raised in a progress callback cancels the call and reaches the caller unchanged.
        def stop(stage, done, total):
            raise KeyboardInterrupt("stop here")
        try:
            model.embed_texts(captions, progress=stop)
            raise AssertionError("the raising callback did not stop embed_texts")
        except KeyboardInterrupt as e:
            print("callback exception propagated: %s" % e)
        expect_error(rateclust.Status.IO, model.embed_image_files, ["/nonexistent/image.png"])


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp"
    print("rateclust %s; %s" % (rateclust.version(), rateclust.device_info()))
    vocabulary = rateclust.default_vocabulary()
    print("default vocabulary: %d names, first '%s'" % (len(vocabulary), vocabulary[0]))
    x, truth = union_of_subspaces()

    # Small head and few steps: this toy problem needs nothing like the CIFAR-10 defaults.
    params = rateclust.FitParams.defaults(k=K, hidden=96, zdim=24, batch=200, steps=120, warmup=8, lr=1e-3,
                                          lr_cluster=1e-3, spectral_sample=400)
    stages = []
    with rateclust.Clusterer.fit(x, params=params, device="cpu",
                                 progress=lambda stage, done, total: stages.append(stage)) as clusterer:
        print("fitted: k = %d, dim = %d, progress calls: %d" % (clusterer.k, clusterer.dim, len(stages)))
        labels, confidence = clusterer.assign(x)  # x is C-contiguous float32: read in place
        acc, nmi, ari = rateclust.metrics(labels, truth)
        print("metrics: acc %.4f nmi %.4f ari %.4f" % (acc, nmi, ari))
        print("confidence: min %.4f mean %.4f" % (confidence.min(), confidence.mean()))

        path = os.path.join(work, "rateclust_python_demo.safetensors")
        clusterer.save(path)
    with rateclust.Clusterer.load(path) as loaded:
        os.remove(path)
        again, _ = loaded.assign(x.astype(np.float64))  # other dtypes and layouts are converted
        assert np.array_equal(again, labels), "the loaded clusterer labels differently"
        print("save/load: same labels for all %d points" % len(again))
        curve, best = loaded.select_k(x, [2, 4, 6], device="cpu")
        print("select-k: L(2) %.1f L(4) %.1f L(6) %.1f best %d" % (curve[0], curve[1], curve[2], best))
        loaded.set_k(x, best, device="cpu")
        assert loaded.k == best
        print("set_k: now %d clusters" % loaded.k)

        expect_error(rateclust.Status.INVALID_ARGUMENT, loaded.assign, np.zeros((10, DIM + 1), np.float32))
        bad = x.copy()
        bad.flat[5] = np.nan
        expect_error(rateclust.Status.NON_FINITE, rateclust.Clusterer.fit, bad, None)
    expect_error(rateclust.Status.IO, rateclust.Clusterer.load, os.path.join(work, "does-not-exist.safetensors"))
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
