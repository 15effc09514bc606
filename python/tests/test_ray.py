"""The Ray pipeline on a local Ray cluster (a head on 127.0.0.1 with 2 CPUs, started here and stopped after):
its labels equal the single-process CLI's on the same sample and seed, and a worker killed mid-run, then the
driver killed mid-run, neither lose nor duplicate rows (the rerun resumes without redoing finished shards).
Skipped, not passed, when ray or pyarrow cannot be imported. Bounded: every wait has a timeout."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")
import rateclust  # noqa: E402
from conftest import TINY_CLIP, write_image_collection  # noqa: E402

# A cluster on the loopback address only, for this test: without Ray's token authentication (on by default since
# Ray 2.5x, where a driver started like ours is refused by a `ray start` head), and without usage statistics.
RAY_ENV = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
RUN_TIMEOUT = 240  # seconds for one pipeline run on the 2-core CI machine (a clean run takes ~15 s)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """The address of a Ray head on the loopback address (2 CPUs), run by `ray start --block` so that ending that
    one process ends the cluster."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="/tmp/rcray")  # short: Ray's socket paths must stay under 108 bytes
    env = RAY_ENV
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                             "--port=%d" % port, "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
                             "--disable-usage-stats", "--temp-dir=" + temp],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = "127.0.0.1:%d" % port
    deadline = time.time() + 90
    while time.time() < deadline:
        probe = subprocess.run([sys.executable, "-c", "import ray; ray.init(address=%r); print(ray.cluster_resources()"
                                ".get('CPU'))" % address], capture_output=True, text=True, timeout=60, env=env)
        if probe.returncode == 0 and probe.stdout.strip().endswith("2.0"):
            break
        if head.poll() is not None:
            pytest.fail("ray start exited with %s" % head.returncode)
        time.sleep(1)
    else:
        head.terminate()
        pytest.fail("the Ray head did not come up in 90 s")
    yield address
    head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


def _pipeline_cmd(address, images, out, *extra):
    return [sys.executable, "-m", "rateclust.ray_pipeline", "--images", str(images), "--model", TINY_CLIP,
            "--k", "3", "--out", str(out), "--address", address, "--shard-size", "4", "--sample", "40",
            "--seed", "11", "--fit-param", "steps=60", "--workers", "2", "--threads-per-worker", "1",
            "--fit-cpus", "1", "--batch-size", "4", *map(str, extra)]


def _run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=dict(RAY_ENV, **(env or {})))
    assert r.returncode == 0, "pipeline failed:\n%s" % r.stderr[-5000:]
    return r.stderr


def _read(out):
    table = pq.read_table(os.path.join(str(out), "assignments"))
    return table.column("path").to_pylist(), table.column("cluster").to_numpy(), table.column("confidence").to_numpy()


def test_distributed_labels_equal_the_single_process_cli(cluster, cli, tmp_path):
    images = tmp_path / "images"
    paths = write_image_collection(images, 48)
    out = tmp_path / "out"
    _run(_pipeline_cmd(cluster, images, out, "--vocab", _vocab(tmp_path)))
    got_paths, got_cluster, got_conf = _read(out)
    assert sorted(got_paths) == paths and len(set(got_paths)) == len(paths)

    # Single process, independent of Ray and of the package: the CLI embeds the same list (same batches of 4),
    # fits on the same sample rows with the same seed and thread count, and assigns every image.
    cli("embed", "--model", TINY_CLIP, "--images", out / "paths.txt", "--out", tmp_path / "x.npy", "--batch", 4,
        "--device", "cpu", "--quiet")
    x = np.load(tmp_path / "x.npy")
    shards = [np.load(out / "embed" / f)["emb"] for f in sorted(os.listdir(out / "embed"))]
    np.testing.assert_array_equal(np.concatenate(shards), x)  # the actors' embeddings are the CLI's, bit for bit
    sample = np.load(out / "sample.npz")
    index = sample["index"]
    assert len(index) == 40 and np.all(np.diff(index) > 0)
    np.testing.assert_array_equal(index, np.sort(np.random.default_rng(11).choice(48, 40, replace=False)))
    np.save(tmp_path / "s.npy", x[index])
    cli("fit", "--features", tmp_path / "s.npy", "--k", 3, "--seed", 11, "--steps", 60, "--device", "cpu",
        "--out", tmp_path / "m.safetensors", env={"RAYON_NUM_THREADS": "1"})
    cli("assign", "--clusterer", tmp_path / "m.safetensors", "--features", tmp_path / "x.npy", "--out",
        tmp_path / "l.npy", "--confidence", tmp_path / "c.npy")
    order = {p: i for i, p in enumerate(got_paths)}
    rows = [order[p] for p in open(out / "paths.txt").read().split("\n") if p]
    np.testing.assert_array_equal(got_cluster[rows], np.load(tmp_path / "l.npy"))
    np.testing.assert_array_equal(got_conf[rows], np.load(tmp_path / "c.npy"))
    assert len(np.unique(got_cluster)) >= 2

    import json
    summary = json.load(open(out / "clusters.json"))
    assert summary["images"] == 48 and summary["k"] == 3
    assert sum(c["size"] for c in summary["clusters"]) == 48
    assert [c["size"] for c in summary["clusters"]] == np.bincount(got_cluster, minlength=3).tolist()
    assert all(c["name"] in ("stripes", "checkerboard", "plain colour", "dog") for c in summary["clusters"]
               if c["size"])

    # The report of the sample, written by the library's report writer: each cluster under its name with its
    # size in the whole collection, thumbnails inlined, the sample's rows in assignments.csv.
    html = open(out / "report" / "report.html", encoding="utf-8").read()
    for c in summary["clusters"]:
        if c["size"]:
            assert "Cluster %d: %s" % (c["cluster"], c["name"]) in html
            assert "· %d images" % c["size"] in html
    assert html.count("<img src=\"data:image/jpeg;base64,") >= 3
    rows_csv = open(out / "report" / "assignments.csv", encoding="utf-8").read().splitlines()
    assert rows_csv[0] == "path,cluster,cluster_name,confidence" and len(rows_csv) == 1 + summary["sample"]


def _vocab(tmp_path):
    p = tmp_path / "vocab.txt"
    p.write_text("stripes\ncheckerboard\nplain colour\ndog\n")
    return p


def _worker_pids(name):
    """Pids of this machine's processes whose title is a Ray actor of class `name` (Ray sets `ray::Class.method`)."""
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if f.read().startswith(("ray::" + name).encode()):
                        pids.append(int(pid))
            except OSError:
                pass
    return pids


def _wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail("timed out after %d s waiting for %s" % (timeout, what))


def _embed_shards(out):
    d = os.path.join(str(out), "embed")
    return sorted(f for f in os.listdir(d) if f.endswith(".npz")) if os.path.isdir(d) else []


def test_killed_worker_then_killed_driver_lose_and_duplicate_nothing(cluster, tmp_path):
    images = tmp_path / "images"
    paths = write_image_collection(images, 64, bad={5})
    n_shards = 16
    # Reference: an uninterrupted run.
    _run(_pipeline_cmd(cluster, images, tmp_path / "clean", "--no-names"))
    ref_paths, ref_cluster, ref_conf = _read(tmp_path / "clean")

    out = tmp_path / "out"
    cmd = _pipeline_cmd(cluster, images, out, "--no-names")
    driver_log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(cmd + ["--test-delay", "0.4"], env=RAY_ENV, stdout=subprocess.DEVNULL, stderr=driver_log)

    def running(n):
        if driver.poll() is not None:
            pytest.fail("the driver ended (%s) before it was killed:\n%s" % (driver.returncode,
                                                                           open(tmp_path / "driver.log").read()))
        return len(_embed_shards(out)) >= n
    try:
        # 1. A worker dies mid-run: Ray restarts the actor and retries its shard.
        _wait_for(lambda: running(2) and _worker_pids("EmbedWorker"), 120, "two embedded shards")
        victim = _worker_pids("EmbedWorker")[0]
        os.kill(victim, signal.SIGKILL)
        # 2. Then the driver dies mid-run, with some shards finished and some not.
        _wait_for(lambda: running(7), 120, "seven embedded shards")
        driver.kill()
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        driver_log.close()
    assert victim not in _worker_pids("EmbedWorker")
    # Ray ends a dead driver's actors; wait for that, so that no shard is written after the listing below.
    _wait_for(lambda: not _worker_pids("EmbedWorker"), 60, "the dead driver's actors to end")
    done = {f: os.stat(os.path.join(str(out), "embed", f)) for f in _embed_shards(out)}
    assert 7 <= len(done) < n_shards, "the driver was not killed mid-run (%d shards done)" % len(done)
    assert not os.path.exists(out / "assignments")

    log = _run(cmd)
    assert "embed: %d of %d shards already done" % (len(done), n_shards) in log, log
    for f, st in done.items():  # finished shards were not recomputed (same file, same modification time)
        now = os.stat(os.path.join(str(out), "embed", f))
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), f
    got_paths, got_cluster, got_conf = _read(out)
    assert len(got_paths) == len(paths) and sorted(got_paths) == paths  # nothing lost, nothing duplicated
    bad = [i for i, p in enumerate(got_paths) if p.endswith("img0005.png")]
    ref = dict(zip(ref_paths, zip(ref_cluster.tolist(), ref_conf.tolist())))
    for p, c, conf in zip(got_paths, got_cluster.tolist(), got_conf.tolist()):
        rc, rconf = ref[p]
        assert c == rc and (conf == rconf or (np.isnan(conf) and np.isnan(rconf))), p
    assert len(bad) == 1 and got_cluster[bad[0]] == -1 and np.isnan(got_conf[bad[0]])  # did not decode
    assert (got_cluster[np.arange(len(got_paths)) != bad[0]] >= 0).all()
    # A third run finds everything done and changes nothing.
    log = _run(cmd)
    assert "embed: %d of %d shards already done" % (n_shards, n_shards) in log
    assert "assign: %d of %d shards already done" % (n_shards, n_shards) in log
    assert _read(out)[0] == got_paths


def test_list_and_parquet_inputs_and_bad_arguments(tmp_path):
    from rateclust import ray_pipeline as rp
    images = tmp_path / "images"
    paths = write_image_collection(images, 6)
    assert rp.list_images(images=str(images)) == paths
    (tmp_path / "l.txt").write_text("\n".join(os.path.relpath(p, tmp_path) for p in paths) + "\n\n")
    assert [os.path.normpath(p) for p in rp.list_images(list_file=str(tmp_path / "l.txt"))] == paths
    import pyarrow as pa
    pq.write_table(pa.table({"file": paths}), tmp_path / "p.parquet")
    assert rp.list_images(parquet=str(tmp_path / "p.parquet"), path_column="file") == paths
    ok = np.array([True, False] * 10)
    s = rp.uniform_sample(ok, 5, 3)
    assert len(s) == 5 and ok[s].all() and np.array_equal(s, rp.uniform_sample(ok, 5, 3))
    assert np.array_equal(rp.uniform_sample(ok, 50, 3), np.flatnonzero(ok))
    with pytest.raises(SystemExit):
        rp.main(["--images", str(images), "--model", TINY_CLIP, "--k", "2", "--out", str(tmp_path / "o"),
                 "--fit-param", "bogus"])
    with pytest.raises(TypeError):
        rp.main(["--images", str(images), "--model", TINY_CLIP, "--k", "2", "--out", str(tmp_path / "o"),
                 "--fit-param", "no_such=1"])


def test_parquet_input_end_to_end(cluster, tmp_path):
    import pyarrow as pa
    paths = write_image_collection(tmp_path / "images", 10)
    rel = [os.path.relpath(p, tmp_path) for p in paths][::-1]  # relative to the parquet's folder, any order
    pq.write_table(pa.table({"file": rel}), tmp_path / "input.parquet")
    out = tmp_path / "out"
    cmd = _pipeline_cmd(cluster, tmp_path / "images", out, "--no-names", "--path-column", "file")
    cmd[cmd.index("--images"):cmd.index("--images") + 2] = ["--parquet", str(tmp_path / "input.parquet")]
    cmd[cmd.index("--sample") + 1] = "10"
    _run(cmd)
    got, cluster_ids, _ = _read(out)
    assert got == [os.path.join(str(tmp_path), r) for r in rel]  # the parquet's row order is kept
    assert ((cluster_ids >= 0) & (cluster_ids < 3)).all()
