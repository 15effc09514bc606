"""The NumPy API of the rateclust package against the library's CLI (an independent front end on the same .npy
files), scikit-learn where installed, and invariants that must hold whatever the implementation."""

import ctypes
import json
import os
import threading
import time

import numpy as np
import pytest

import rateclust
from conftest import IMAGE, TINY_CLIP, png_bytes, synthetic_image

FAST = dict(steps=80, seed=5)  # a shorter schedule than the automatic one: this toy problem needs no more


@pytest.fixture(scope="module")
def fitted(synth):
    x, _, _ = synth
    with rateclust.Clusterer.fit(x, k=4, **FAST) as c:
        yield c


def test_version_and_abi():
    assert rateclust.abi_version() == 2
    major, minor, patch = map(int, rateclust.version().split("."))
    assert (major, minor, patch) >= (0, 1, 0)
    assert rateclust.library_path().endswith(".so") or rateclust.library_path().endswith(".dylib")


def test_fit_separates_an_easy_union_of_subspaces(synth, fitted):
    x, truth, _ = synth
    assert (fitted.k, fitted.dim) == (4, 32)
    labels, confidence = fitted.assign(x)
    assert labels.dtype == np.int64 and labels.shape == (len(x),)
    assert confidence.dtype == np.float32 and confidence.shape == (len(x),)
    assert set(np.unique(labels)) <= set(range(4))
    acc, nmi, ari = rateclust.metrics(labels, truth)
    assert acc >= 0.95 and nmi >= 0.9 and ari >= 0.9, (acc, nmi, ari)


def test_labels_equal_the_cli_on_the_same_npy_and_seed(synth, cli, tmp_path):
    x, _, x_path = synth
    cli("fit", "--features", x_path, "--k", 4, "--steps", FAST["steps"], "--seed", FAST["seed"],
        "--out", tmp_path / "m.safetensors")
    cli("assign", "--clusterer", tmp_path / "m.safetensors", "--features", x_path, "--out", tmp_path / "l.npy",
        "--confidence", tmp_path / "c.npy")
    with rateclust.Clusterer.fit(np.load(x_path), k=4, **FAST) as c:
        labels, confidence = c.assign(x)
    np.testing.assert_array_equal(labels, np.load(tmp_path / "l.npy"))
    np.testing.assert_array_equal(confidence, np.load(tmp_path / "c.npy"))
    cli("assign", "--clusterer", tmp_path / "m.safetensors", "--features", x_path, "--out", tmp_path / "l2.npy",
        "--scores", tmp_path / "s.npy")
    with rateclust.Clusterer.load(tmp_path / "m.safetensors") as loaded:
        scores = loaded.assign_scores(x)
    assert scores.shape == (len(x), 4) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, np.load(tmp_path / "s.npy"))
    np.testing.assert_array_equal(scores.argmax(axis=1), labels)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-5)  # the default rule's soft membership
    # And the CLI's saved model, loaded here, labels as the CLI does.
    with rateclust.Clusterer.load(tmp_path / "m.safetensors") as loaded:
        np.testing.assert_array_equal(loaded.assign(x)[0], labels)


def test_save_load_gives_the_same_labels(synth, fitted, tmp_path):
    x, _, _ = synth
    labels, confidence = fitted.assign(x)
    fitted.save(tmp_path / "model.safetensors")
    with rateclust.Clusterer.load(str(tmp_path / "model.safetensors")) as c:
        assert (c.k, c.dim) == (fitted.k, fitted.dim)
        again, conf2 = c.assign(x)
    np.testing.assert_array_equal(again, labels)
    np.testing.assert_array_equal(conf2, confidence)


def test_errors_carry_status_name_and_message(synth, fitted, tmp_path):
    x, _, _ = synth
    bad = x.copy()
    bad[3, 5] = np.nan
    with pytest.raises(rateclust.RateclustError) as e:
        rateclust.Clusterer.fit(bad, k=4, **FAST)
    assert e.value.status == rateclust.Status.NON_FINITE and e.value.code == 2
    assert e.value.status_name == "NON_FINITE"
    assert "non-finite" in e.value.message and "(NON_FINITE)" in str(e.value)
    with pytest.raises(rateclust.RateclustError) as e:
        fitted.assign(np.zeros((10, 33), np.float32))
    assert e.value.status == rateclust.Status.INVALID_ARGUMENT
    assert "dimension 33" in e.value.message, e.value.message
    with pytest.raises(rateclust.RateclustError) as e:
        rateclust.Clusterer.load(tmp_path / "missing.safetensors")
    assert e.value.status == rateclust.Status.IO and e.value.message
    (tmp_path / "garbage.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(rateclust.RateclustError) as e:
        rateclust.Clusterer.load(tmp_path / "garbage.safetensors")
    assert e.value.status == rateclust.Status.FORMAT, e.value
    with pytest.raises(rateclust.RateclustError) as e:
        rateclust.Clusterer.fit(x[:1], k=4)
    assert e.value.status == rateclust.Status.INVALID_ARGUMENT
    with pytest.raises(rateclust.RateclustError) as e:
        rateclust.Model("/nonexistent/clip")
    assert e.value.status in (rateclust.Status.IO, rateclust.Status.FORMAT)
    # Every status value's name comes from the library's rateclust_status_name.
    for s in rateclust.Status:
        assert rateclust.RateclustError(s, "m").status_name == s.name


def test_closed_handles_raise_and_close_is_idempotent(synth):
    x, _, _ = synth
    with rateclust.Clusterer.fit(x, k=4, steps=10, kmeans_candidates=0) as c:
        pass
    assert c.closed
    c.close()
    with pytest.raises(rateclust.RateclustError) as e:
        c.assign(x)
    assert e.value.status == rateclust.Status.INVALID_ARGUMENT and "closed" in e.value.message


def test_bad_arrays_are_converted_or_refused(synth, fitted):
    x, _, _ = synth
    want, _ = fitted.assign(x)
    # Converted: float64, Fortran order, a strided view, byte-swapped, int — same labels as the float32 copy.
    np.testing.assert_array_equal(fitted.assign(x.astype(np.float64))[0], want)
    np.testing.assert_array_equal(fitted.assign(np.asfortranarray(x))[0], want)
    wide = np.zeros((len(x), 64), np.float32)
    wide[:, ::2] = x
    np.testing.assert_array_equal(fitted.assign(wide[:, ::2])[0], want)
    np.testing.assert_array_equal(fitted.assign(x.astype(">f4"))[0], want)
    ints = np.round(x * 100).astype(np.int32)
    np.testing.assert_array_equal(fitted.assign(ints)[0], fitted.assign(ints.astype(np.float32))[0])
    np.testing.assert_array_equal(fitted.assign(x.tolist())[0], want)
    # Refused with a clear message, never a crash.
    for bad, words in [(x[0], "2-D"), (x[None], "2-D"), (x.astype(np.complex64), "dtype"),
                       (np.array([["a"] * 32]), "dtype"), (np.empty((0, 32), np.float32), ""),
                       (x.astype(object), "dtype")]:
        with pytest.raises(rateclust.RateclustError) as e:
            fitted.assign(bad)
        assert e.value.status == rateclust.Status.INVALID_ARGUMENT and words in e.value.message, e.value
    with pytest.raises(rateclust.RateclustError):
        rateclust.metrics([0, 1, 2], [0, 1])
    with pytest.raises(rateclust.RateclustError):
        rateclust.metrics([0.5, 1], [0, 1])
    with pytest.raises(rateclust.RateclustError):
        fitted.assign(x, device="tpu")
    with pytest.raises(TypeError):
        rateclust.Clusterer.fit(x, k=4, not_a_param=1)
    with pytest.raises(rateclust.RateclustError):
        rateclust.Clusterer.fit(x, k=-4)


def test_contiguous_float32_input_is_passed_in_place(synth, fitted, monkeypatch):
    x, _, _ = synth
    assert rateclust.as_rows(x) is x
    assert rateclust.as_rows(x.astype(np.float64)) is not x
    ro = x.copy()
    ro.flags.writeable = False
    assert rateclust.as_rows(ro) is ro  # read-only arrays are used in place too
    seen = []
    real = rateclust._core.lib

    class Recorder:
        def __getattr__(self, name):
            fn = getattr(real, name)
            if name == "rateclust_assign":
                return lambda *a: (seen.append(a[1]), fn(*a))[1]
            return fn
    monkeypatch.setattr(rateclust._core, "lib", Recorder())
    fitted.assign(ro)
    fitted.assign(np.asfortranarray(x))
    assert seen[0] == ro.ctypes.data  # the library read the caller's buffer
    assert seen[1] != x.ctypes.data


def test_the_gil_is_released_during_a_long_call(fitted, synth):
    x, _, _ = synth
    big = np.repeat(x, 400, axis=0)  # 240k rows: about a second
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(time.perf_counter())
    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.05)
    start = time.perf_counter()
    fitted.assign(big)
    end = time.perf_counter()
    stop.set()
    t.join()
    assert end - start > 0.2, "the call was too short to tell (%.3f s)" % (end - start)
    # With the GIL held for the whole call the other thread could not run between its first and last fifth.
    lo, hi = start + 0.2 * (end - start), end - 0.2 * (end - start)
    inside = sum(lo <= s <= hi for s in ticks)
    assert inside > 100, "the other thread ran %d times during the middle 60%% of a %.2f s call" % (inside, end - start)


def test_select_k_and_set_k(synth, fitted, cli, tmp_path):
    x, _, x_path = synth
    curve, best = fitted.select_k(x, [2, 4, 6])
    assert curve.shape == (3,) and best == [2, 4, 6][int(np.argmin(curve))]
    assert best == 4
    fitted.save(tmp_path / "m.safetensors")
    out = json.loads(cli("select-k", "--clusterer", tmp_path / "m.safetensors", "--features", x_path,
                         "--candidates", "2,4,6").strip().splitlines()[-1])
    np.testing.assert_allclose(curve, out["coding_length"], rtol=1e-9)
    with rateclust.Clusterer.load(tmp_path / "m.safetensors") as c:
        c.set_k(x, 3)
        assert c.k == 3
        labels, _ = c.assign(x)
        assert set(np.unique(labels)) <= {0, 1, 2}


def test_metrics_match_hand_computed_values_and_sklearn():
    assert rateclust.metrics([1, 1, 0, 0], [0, 0, 1, 1]) == (1.0, 1.0, 1.0)
    m = rateclust.metrics([0, 0, 1, 1], [0, 1, 1, 1])
    assert m.accuracy == pytest.approx(0.75)
    rng = np.random.default_rng(1)
    pred, truth = rng.integers(0, 5, 500), rng.integers(0, 4, 500)
    m = rateclust.metrics(pred, truth)
    try:
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    except ImportError:
        pytest.skip("scikit-learn is not installed: the NMI/ARI comparison did not run")
    assert m.nmi == pytest.approx(normalized_mutual_info_score(truth, pred), abs=1e-9)
    assert m.ari == pytest.approx(adjusted_rand_score(truth, pred), abs=1e-9)


def test_fit_params_defaults_presets_and_overrides():
    d = rateclust.FitParams.defaults()
    assert d.seed == 42 and d.k == 0 and d.normalize_input
    c = rateclust.FitParams.preset("cifar10")
    assert c != d
    assert rateclust.FitParams.preset("auto") == d
    assert d.updated(k=7, **{"lambda": 0.1}).lambda_ == 0.1
    with pytest.raises(rateclust.RateclustError):
        rateclust.FitParams.preset("no-such-preset")
    with pytest.raises(rateclust.RateclustError):
        d.updated(assign_rule="nearest")._to_c()
    assert d.updated(assign_rule="prototype_z")._to_c().assign_rule == 1


def test_progress_callback_stages_cancel_and_exceptions(synth):
    x, _, _ = synth
    stages = []
    with rateclust.Clusterer.fit(x, k=4, steps=20, progress=lambda s, d, t: stages.append((s, d, t))) as c:
        assert c.k == 4
    assert {"train", "cluster"} <= {s for s, _, _ in stages}
    assert all(0 <= d <= t for _, d, t in stages)
    with pytest.raises(rateclust.RateclustError) as e:
        rateclust.Clusterer.fit(x, k=4, steps=20, progress=lambda s, d, t: False)
    assert e.value.status == rateclust.Status.CANCELLED

    def boom(stage, done, total):
        raise KeyError("stop here")
    with pytest.raises(KeyError, match="stop here"):
        rateclust.Clusterer.fit(x, k=4, steps=20, progress=boom)


# --- CLIP ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip():
    with rateclust.Model(TINY_CLIP, device="cpu") as m:
        yield m


def test_embed_image_files_equal_the_cli(clip, cli, tmp_path):
    (tmp_path / "list.txt").write_text(IMAGE + "\n" + IMAGE + "\n")
    cli("embed", "--model", TINY_CLIP, "--images", tmp_path / "list.txt", "--out", tmp_path / "e.npy", "--quiet",
        "--device", "cpu")
    emb = clip.embed_image_files([IMAGE, IMAGE])
    assert emb.shape == (2, clip.embed_dim) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb, np.load(tmp_path / "e.npy"))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-5)
    raw = clip.embed_image_files([IMAGE], normalize=False)
    assert abs(np.linalg.norm(raw) - 1) > 1e-3
    assert clip.embed_image_files([IMAGE], pooled=True).shape[1] == clip.output_dim(True, pooled=True)
    with pytest.raises(rateclust.RateclustError) as e:
        clip.embed_image_files(["/nonexistent/image.png"])
    assert e.value.status == rateclust.Status.IO and "/nonexistent/image.png" in e.value.message


def test_one_tower_and_int8_models(clip):
    with rateclust.Model(TINY_CLIP, device="cpu", towers="texts", precision="int8") as m:
        e = m.embed_texts(["a photo of a cat", "a diagram"])
        f = clip.embed_texts(["a photo of a cat", "a diagram"])
        assert e.shape == f.shape
        assert np.all(np.sum(e * f, axis=1) > 0.99)
        with pytest.raises(rateclust.RateclustError) as err:
            m.embed_image_files([IMAGE])
        assert err.value.status == rateclust.Status.INVALID_ARGUMENT
    with pytest.raises(rateclust.RateclustError):
        rateclust.Model(TINY_CLIP, precision="int4")
    with pytest.raises(rateclust.RateclustError) as err:
        rateclust.Model(TINY_CLIP, device="cuda", precision="int8")
    assert err.value.status == rateclust.Status.INVALID_ARGUMENT


def test_embed_bytes_and_arrays(clip):
    with open(IMAGE, "rb") as f:
        blob = f.read()
    np.testing.assert_allclose(clip.embed_images_encoded([blob]), clip.embed_image_files([IMAGE]), atol=1e-5)
    img = synthetic_image(2, size=48)
    from_png = clip.embed_images_encoded([png_bytes(img)])  # the library decodes a lossless PNG of the same pixels
    np.testing.assert_allclose(clip.embed_image_arrays([img]), from_png, atol=1e-5)
    np.testing.assert_allclose(clip.embed_image_arrays(img[None]), from_png, atol=1e-5)  # an N×H×W×3 batch
    padded = np.zeros((48, 60, 3), np.uint8)
    padded[:, :48] = img
    view = padded[:, :48]  # rows 180 bytes apart: read in place with that stride
    np.testing.assert_allclose(clip.embed_image_arrays([view]), from_png, atol=1e-5)
    np.testing.assert_allclose(clip.embed_image_arrays([img[:, :, ::-1]], channel_order="bgr"), from_png, atol=1e-5)
    np.testing.assert_allclose(clip.embed_image_arrays([np.asfortranarray(img)]), from_png, atol=1e-5)
    rgba = np.concatenate([img, np.full((48, 48, 1), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(clip.embed_image_arrays([rgba]), from_png, atol=1e-5)
    gray = img[:, :, 0].copy()
    g = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_allclose(clip.embed_image_arrays([gray]), clip.embed_image_arrays([g]), atol=1e-5)
    for bad in (img.astype(np.float32), img[:, :, :2], np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(rateclust.RateclustError) as e:
            clip.embed_image_arrays([bad])
        assert e.value.status == rateclust.Status.INVALID_ARGUMENT
    with pytest.raises(rateclust.RateclustError) as e:
        clip.embed_images_encoded([b"not an image"])
    assert e.value.status == rateclust.Status.FORMAT


def test_embed_texts_equal_the_cli(clip, cli, tmp_path):
    texts = ["a photo of a cat", "a photo of a dog", "a diagram"]
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n")
    cli("embed", "--model", TINY_CLIP, "--texts", tmp_path / "t.txt", "--out", tmp_path / "t.npy", "--quiet",
        "--device", "cpu")
    emb = clip.embed_texts(texts)
    assert emb.shape == (3, clip.embed_dim)
    np.testing.assert_array_equal(emb, np.load(tmp_path / "t.npy"))
    assert clip.embed_texts([]).shape == (0, clip.embed_dim)
    with pytest.raises(rateclust.RateclustError):
        clip.embed_texts("one string")


def test_naming_clusters_equals_the_cli_label_command(clip, cli, tmp_path):
    imgs = [synthetic_image(i, size=40) for i in range(12)]
    emb = clip.embed_image_arrays(imgs)
    labels = np.arange(12) % 3
    vocab = ["cat", "dog", "zebra", "checkerboard", "stripes", "sky"]
    named = rateclust.name_clusters(clip, emb, labels, 3, vocabulary=vocab)
    assert [n.cluster for n in named] == [0, 1, 2] and all(n.members == 4 for n in named)
    assert all(n.name in vocab and 0 < n.score <= 1 for n in named)
    np.save(tmp_path / "e.npy", emb)
    np.save(tmp_path / "l.npy", labels)
    (tmp_path / "v.txt").write_text("\n".join(vocab) + "\n")
    out = cli("label", "--model", TINY_CLIP, "--features", tmp_path / "e.npy", "--labels", tmp_path / "l.npy",
              "--vocab", tmp_path / "v.txt", "--device", "cpu")
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["name"] for r in rows] == [n.name for n in named]
    for r, n in zip(rows, named):
        assert r["score"] == pytest.approx(n.score, abs=5e-5)  # the CLI prints 4 decimals
    caption, score = rateclust.label_clusters(emb, labels, 4, clip.embed_texts(vocab))
    assert caption[3] == -1 and caption.dtype == np.int64  # cluster 3 is empty


def test_set_gpu_refuses_a_gpu_that_is_not_there():
    with pytest.raises(rateclust.RateclustError) as e:
        rateclust.set_gpu(rateclust.device_count() + 3)
    assert e.value.status == rateclust.Status.DEVICE and e.value.message


def test_default_vocabulary_and_device_info():
    vocab = rateclust.default_vocabulary()
    assert len(vocab) > 900 and vocab[0] == "tench" and len(set(vocab)) == len(vocab)
    assert rateclust.device_info("cpu")
    assert rateclust.device_count() >= 0
    assert rateclust.cpu_threads() >= 1


def test_closing_a_model_while_other_threads_embed_is_safe():
    model = rateclust.Model(TINY_CLIP, device="cpu")
    imgs = [synthetic_image(i, size=64) for i in range(64)]
    want = model.embed_image_arrays(imgs[:1])
    results, started = [], threading.Event()

    def work():
        started.set()
        for _ in range(20):
            try:
                results.append(model.embed_image_arrays(imgs)[:1])
            except rateclust.RateclustError as e:  # after close: refused, never a use-after-free
                assert e.status == rateclust.Status.INVALID_ARGUMENT and "closed" in e.message
                results.append(None)
    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait()
    model.close()
    for t in threads:
        t.join()
    assert model.closed and len(results) == 40
    for r in results:
        assert r is None or np.allclose(r, want, atol=1e-5)


def test_write_report_writes_the_cli_outputs_and_refuses_inconsistent_input(tmp_path):
    img = tmp_path / "a.png"
    img.write_bytes(open(IMAGE, "rb").read())
    clusters = [{"name": "cat", "score": 0.7, "size": 2, "runners_up": [("dog", 0.2)], "central": [0, 1]},
                {"name": None, "score": 0.0, "size": 0}]
    rateclust.write_report(str(tmp_path / "out"), ["a.png", "a.png"], [0, 0], [0.5, 0.25], clusters,
                           images_dir=str(tmp_path), model_dir="tiny", k_curve=[(2, 10.0), (3, 12.5)])
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Cluster 0: cat" in html and html.count('<img src="data:image/jpeg;base64,') == 2 and "dog (0.20)" in html
    assert (tmp_path / "out" / "assignments.csv").read_text().splitlines()[1:] == ["a.png,0,cat,0.5000"] * 1 + ["a.png,0,cat,0.2500"]
    doc = json.loads((tmp_path / "out" / "clusters.json").read_text())
    assert doc["k"] == 2 and doc["k_curve"][1] == {"k": 3, "coding_length": 12.5}
    with pytest.raises(rateclust.RateclustError) as e:
        rateclust.write_report(str(tmp_path / "bad"), ["a.png"], [5], [0.1], clusters)
    assert e.value.status == rateclust.Status.INVALID_ARGUMENT and "label 5" in e.value.message
    assert not (tmp_path / "bad" / "report.html").exists()
