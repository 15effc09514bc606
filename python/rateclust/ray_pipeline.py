"""Cluster a large image collection on a Ray cluster: embed → sample → fit → assign → name, resumable.

    python -m rateclust.ray_pipeline --images DIR --model CLIP_DIR --k 50 --out OUT [--sample 20000 --seed 42]
    python -m rateclust.ray_pipeline --list paths.txt ...      # one image path per line
    python -m rateclust.ray_pipeline --parquet paths.parquet ... # a column of paths (--path-column, default "path")

Stages (docs/python.md has the design, docs/scale.md the measured throughput and the cost model):

1. **List** the images (a folder tree walked recursively, sorted; or the list / parquet in its order) into
   ``OUT/paths.txt``, cut into shards of ``--shard-size`` consecutive rows.
2. **Embed** every shard in a pool of ``--workers`` Ray actors, each holding one loaded CLIP model (CPU threads
   ``--threads-per-worker``, or one GPU each with ``--gpus-per-worker 1 --device cuda``). Shard i is written to
   ``OUT/embed/shard-<i>.npz`` (float32 embeddings + an ``ok`` mask: an image that does not decode is kept as a
   row with ok = False and later gets cluster -1).
3. **Sample** ``--sample`` rows uniformly without replacement from the decodable rows, seeded by ``--seed``
   (``numpy.random.default_rng(seed).choice``, sorted), gathered by parallel tasks → ``OUT/sample.npz``.
4. **Fit** once on the sample in one Ray task (``--fit-cpus`` CPU threads, or one GPU) → ``OUT/clusterer.safetensors``
   (also linked as ``OUT/model.safetensors``, the deprecated name earlier releases wrote).
5. **Assign** every shard in parallel actors holding the clusterer → ``OUT/assignments/part-<i>.parquet`` with
   columns ``path`` (string), ``cluster`` (int64; -1 for an image that did not decode) and ``confidence``
   (float32; NaN there). The folder is one parquet dataset (``pyarrow.dataset.dataset(OUT/assignments)``).
6. **Name** the clusters with CLIP's text encoder by CPP's vote over the (uniform) sample → ``OUT/clusters.json``.
7. **Report** of the sample → ``OUT/report/report.html`` (self-contained: thumbnails of each cluster's most
   confident sample members, its name and its size in the whole collection) with the sample's
   ``assignments.csv`` and ``clusters.json``, written by the library as ``rateclust cluster`` writes them.

Resumable: every file is written to a temporary name in its folder and renamed into place, so a file that
exists is complete. A rerun with the same arguments (after a worker, a node or the driver died) recomputes only
the shards, and the stages, whose file is missing; a worker that dies mid-run is restarted by Ray and its shard
retried. ``OUT`` must be on storage every node sees (a local disk for a one-machine cluster, else NFS or a
mounted bucket): workers write their shards there directly and the driver only ever reads small things.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


# --- files -------------------------------------------------------------------------------------------------------

def write_atomically(path: str, write: Any) -> None:
    """Calls ``write(file_object)`` on a temporary file next to ``path``, fsyncs it, then renames it to ``path``:
    a reader (or a resumed run) sees either no file or the complete one."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def list_images(images: Optional[str] = None, list_file: Optional[str] = None, parquet: Optional[str] = None,
                path_column: str = "path") -> List[str]:
    """The image paths of a folder tree (recursive, sorted, by extension), a list file (one path per line, blank
    lines skipped, relative paths taken from the list's folder) or a parquet column, in that order."""
    if sum(x is not None for x in (images, list_file, parquet)) != 1:
        raise ValueError("give exactly one of --images, --list, --parquet")
    if images is not None:
        out: List[str] = []
        for root, dirs, files in os.walk(images):
            dirs.sort()
            out.extend(os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
        return sorted(os.path.abspath(p) for p in out)
    if list_file is not None:
        base = os.path.dirname(os.path.abspath(list_file))
        with open(list_file, encoding="utf-8") as f:
            return [os.path.join(base, line.strip()) for line in f if line.strip()]
    import pyarrow.parquet as pq
    assert parquet is not None
    table = pq.read_table(parquet, columns=[path_column])
    base = os.path.dirname(os.path.abspath(parquet))
    return [os.path.join(base, p) for p in table.column(path_column).to_pylist()]


# Most confident sample members shown per cluster in the report.
REPORT_CENTRAL = 12


def shard_ranges(n: int, shard_size: int) -> List[Tuple[int, int]]:
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def uniform_sample(ok: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted global row indices of a uniform sample without replacement of ``size`` rows among those with
    ``ok`` true (all of them if fewer): ``numpy.random.default_rng(seed).choice``."""
    candidates = np.flatnonzero(ok)
    if size >= len(candidates):
        return candidates
    pick = np.random.default_rng(seed).choice(len(candidates), size=size, replace=False)
    return np.sort(candidates[pick])


def embed_shard_path(out: str, i: int) -> str:
    return os.path.join(out, "embed", "shard-%06d.npz" % i)


def assign_part_path(out: str, i: int) -> str:
    return os.path.join(out, "assignments", "part-%06d.parquet" % i)


def _save_npz(path: str, **arrays: np.ndarray) -> None:
    write_atomically(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


def _test_delay(seconds: float) -> None:
    # Test hook (--test-delay, not in --help): sleep per shard, so that tests can kill a worker or the driver
    # mid-run. Passed as an argument, not an environment variable: a cluster's workers do not see the driver's.
    if seconds > 0:
        time.sleep(seconds)


def _set_threads(n: int) -> None:
    import rateclust
    if n > 0:
        try:
            rateclust.set_cpu_threads(n)
        except rateclust.RateclustError:
            pass  # the pool of this process was built already (a reused worker): keep it


# --- workers (plain Ray actors and tasks; see docs/python.md for why not Ray Data) ------------------------------

class EmbedWorker:
    """Holds one loaded CLIP model; embeds shards and writes them."""

    def __init__(self, model_dir: str, device: str, threads: int, batch_size: int) -> None:
        _set_threads(threads)
        import rateclust
        self.model = rateclust.Model(model_dir, device=device)
        self.batch_size = batch_size

    def embed_shard(self, out: str, i: int, paths: List[str], delay: float = 0.0) -> Tuple[int, int]:
        """Embeds ``paths`` (shard ``i``) into OUT/embed/shard-i.npz; returns (i, rows that decoded)."""
        import rateclust
        path = embed_shard_path(out, i)
        if os.path.exists(path):  # a retried task whose first attempt finished
            return i, int(np.load(path)["ok"].sum())
        _test_delay(delay)
        try:
            emb = self.model.embed_image_files(paths, batch_size=self.batch_size)
            ok = np.ones(len(paths), bool)
        except rateclust.RateclustError as e:
            if e.status not in (rateclust.Status.IO, rateclust.Status.FORMAT):
                raise
            # One bad file fails the batch: embed one at a time and mark the failures.
            emb = np.zeros((len(paths), self.model.output_dim(True)), np.float32)
            ok = np.zeros(len(paths), bool)
            for j, p in enumerate(paths):
                try:
                    emb[j] = self.model.embed_image_files([p], batch_size=self.batch_size)[0]
                    ok[j] = True
                except rateclust.RateclustError as e2:
                    if e2.status not in (rateclust.Status.IO, rateclust.Status.FORMAT):
                        raise
                    print("rateclust-ray: skipping %s: %s" % (p, e2.message), file=sys.stderr, flush=True)
        _save_npz(path, emb=emb, ok=ok)
        return i, int(ok.sum())

    def pid(self) -> int:
        return os.getpid()


class AssignWorker:
    """Holds one loaded clusterer; labels shards and writes their parquet parts."""

    def __init__(self, clusterer_path: str, device: str, threads: int) -> None:
        _set_threads(threads)
        import rateclust
        self.clusterer = rateclust.Clusterer.load(clusterer_path)
        self.device = device

    def assign_shard(self, out: str, i: int, paths: List[str], delay: float = 0.0) -> Tuple[int, List[int]]:
        """Labels shard ``i`` into OUT/assignments/part-i.parquet; returns (i, members per cluster)."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        path = assign_part_path(out, i)
        if os.path.exists(path):
            return i, _part_counts(path)
        _test_delay(delay)
        k = self.clusterer.k
        shard = np.load(embed_shard_path(out, i))
        emb, ok = shard["emb"], shard["ok"]
        cluster = np.full(len(paths), -1, np.int64)
        confidence = np.full(len(paths), np.nan, np.float32)
        if ok.any():
            labels, conf = self.clusterer.assign(emb[ok], device=self.device)
            cluster[ok], confidence[ok] = labels, conf
        counts = np.bincount(cluster[cluster >= 0], minlength=k).tolist()
        table = pa.table({"path": pa.array(paths, pa.string()), "cluster": cluster, "confidence": confidence})
        table = table.replace_schema_metadata({"rateclust_counts": json.dumps(counts)})
        write_atomically(path, lambda f: pq.write_table(table, f))
        return i, counts


def _part_counts(path: str) -> List[int]:
    import pyarrow.parquet as pq
    return json.loads(pq.read_schema(path).metadata[b"rateclust_counts"])


def gather_rows(out: str, i: int, local: np.ndarray) -> np.ndarray:
    """Rows ``local`` of embed shard ``i`` (the sample's part in that shard)."""
    return np.load(embed_shard_path(out, i))["emb"][local]


def fit_sample(sample: np.ndarray, fit_fields: Dict[str, Any], device: str, threads: int, clusterer_path: str) -> int:
    """Fits the clusterer on the sample and saves it (the library writes a temporary file and renames it)."""
    _set_threads(threads)
    import rateclust
    with rateclust.Clusterer.fit(sample, device=device, **fit_fields) as c:
        c.save(clusterer_path)
        return c.k


def name_clusters_task(model_dir: str, clusterer_path: str, sample: np.ndarray, vocabulary: Optional[List[str]],
                       template: str, device: str, threads: int) -> List[Dict[str, Any]]:
    """CPP's self-labeling vote over the sample: the sample's clusters, the vocabulary's text embeddings."""
    _set_threads(threads)
    import rateclust
    with rateclust.Clusterer.load(clusterer_path) as c, rateclust.Model(model_dir, device=device) as clip:
        labels, _ = c.assign(sample, device=device)
        named = rateclust.name_clusters(clip, sample, labels, c.k, vocabulary=vocabulary, template=template)
    return [n._asdict() for n in named]


def report_task(clusterer_path: str, sample: np.ndarray, files: List[str], names: List[Dict[str, Any]],
                sizes: List[int], report_dir: str, model_dir: str, device: str, threads: int) -> None:
    """``report_dir``/report.html (with assignments.csv and clusters.json) of the uniform sample, through the
    library's report writer (``rateclust_write_report``, as ``rateclust cluster`` writes it): each cluster with
    its name, its size in the whole collection and its most confident sample members as thumbnails."""
    _set_threads(threads)
    import rateclust
    with rateclust.Clusterer.load(clusterer_path) as c:
        labels, conf = c.assign(sample, device=device)
    clusters = []
    for n in names:
        rows = np.flatnonzero(labels == n["cluster"])
        central = rows[np.argsort(-conf[rows], kind="stable")][:REPORT_CENTRAL]
        clusters.append({"name": n.get("name"), "score": n.get("score") or 0.0, "size": sizes[n["cluster"]],
                         "central": central.tolist()})
    rateclust.write_report(report_dir, files, labels, conf, clusters, model_dir=model_dir)


# --- driver --------------------------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print("rateclust-ray: " + msg, file=sys.stderr, flush=True)


def _run_pool(ray: Any, actors: List[Any], method: str, jobs: Sequence[Tuple[Any, ...]], what: str) -> List[Any]:
    """Runs ``actor.method(*job)`` for every job over the actors (at most two in flight per actor)."""
    pending: Dict[Any, int] = {}
    results: List[Any] = []
    queue = list(jobs)
    free = [a for a in actors for _ in range(2)]
    done = 0
    while queue or pending:
        while queue and free:
            actor = free.pop()
            ref = getattr(actor, method).remote(*queue.pop(0))
            pending[ref] = actors.index(actor)
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            free.append(actors[pending.pop(ref)])
            results.append(ray.get(ref))
            done += 1
            if done == len(jobs) or done % max(1, len(jobs) // 10) == 0:
                _log("%s: %d/%d shards" % (what, done, len(jobs)))
    return results


def run(args: argparse.Namespace) -> Dict[str, Any]:
    import ray
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    t_all = time.perf_counter()
    timings: Dict[str, float] = {}

    # 1. List (the manifest pins the row order of a resumed run).
    paths = list_images(args.images, args.list, args.parquet, args.path_column)
    if not paths:
        raise SystemExit("rateclust-ray: no images found")
    manifest = os.path.join(out, "paths.txt")
    text = "".join(p + "\n" for p in paths).encode("utf-8")
    if os.path.exists(manifest):
        with open(manifest, "rb") as f:
            if f.read() != text:
                raise SystemExit("rateclust-ray: %s lists other images than this run: use another --out" % manifest)
    else:
        write_atomically(manifest, lambda f: f.write(text))
    settings = {"model": os.path.abspath(args.model), "shard_size": args.shard_size, "sample": args.sample,
                "seed": args.seed, "fit": _fit_fields(args), "batch_size": args.batch_size}
    settings_path = os.path.join(out, "settings.json")
    if os.path.exists(settings_path):
        with open(settings_path) as sf:
            if json.load(sf) != settings:
                raise SystemExit("rateclust-ray: %s was written with other settings: use another --out" % settings_path)
    else:
        write_atomically(settings_path, lambda f: f.write(json.dumps(settings, indent=1).encode()))
    shards = shard_ranges(len(paths), args.shard_size)
    _log("%d images in %d shards of %d" % (len(paths), len(shards), args.shard_size))

    if not ray.is_initialized():
        if args.address:
            ray.init(address=args.address, log_to_driver=True)
        else:
            ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    worker_opts = {"num_cpus": args.threads_per_worker, "num_gpus": args.gpus_per_worker,
                   "max_restarts": 3, "max_task_retries": 3}

    # 2. Embed.
    t = time.perf_counter()
    todo = [i for i in range(len(shards)) if not os.path.exists(embed_shard_path(out, i))]
    _log("embed: %d of %d shards already done" % (len(shards) - len(todo), len(shards)))
    if todo:
        Embed = ray.remote(EmbedWorker).options(**worker_opts)
        actors = [Embed.remote(args.model, args.device, args.threads_per_worker, args.batch_size)
                  for _ in range(min(args.workers, len(todo)))]
        _run_pool(ray, actors, "embed_shard",
                  [(out, i, paths[shards[i][0]:shards[i][1]], args.test_delay) for i in todo], "embed")
        for a in actors:
            ray.kill(a)
    timings["embed_s"] = time.perf_counter() - t

    # 3. Sample (indices from the ok masks; rows gathered where they lie).
    t = time.perf_counter()
    sample_path = os.path.join(out, "sample.npz")
    if os.path.exists(sample_path):
        s = np.load(sample_path)
        index, sample = s["index"], s["emb"]
    else:
        ok = np.concatenate([np.load(embed_shard_path(out, i))["ok"] for i in range(len(shards))])
        index = uniform_sample(ok, args.sample, args.seed)
        shard_of = np.searchsorted([b for _, b in shards], index, side="right")
        gather = ray.remote(gather_rows)
        parts = [gather.remote(out, int(i), index[shard_of == i] - shards[i][0]) for i in np.unique(shard_of)]
        sample = np.concatenate(ray.get(parts)) if parts else np.zeros((0, 0), np.float32)
        _save_npz(sample_path, index=index, emb=sample)
    _log("sample: %d rows (seed %d)" % (len(index), args.seed))
    timings["sample_s"] = time.perf_counter() - t

    # 4. Fit.
    t = time.perf_counter()
    clusterer_path = os.path.join(out, "clusterer.safetensors")
    legacy_path = os.path.join(out, "model.safetensors")
    if not os.path.exists(clusterer_path) and os.path.exists(legacy_path):
        os.link(legacy_path, clusterer_path)  # a run an earlier release started, resumed
    if not os.path.exists(clusterer_path):
        fit = ray.remote(fit_sample).options(num_cpus=args.fit_cpus, num_gpus=args.gpus_per_worker, max_retries=2)
        k = ray.get(fit.remote(sample, _fit_fields(args), args.device, args.fit_cpus, clusterer_path))
        _log("fit: k = %d" % k)
    else:
        _log("fit: %s already there" % clusterer_path)
    if not os.path.exists(legacy_path):
        try:
            os.link(clusterer_path, legacy_path)
        except OSError as e:
            _log("could not link the deprecated name %s (%s)" % (legacy_path, e))
    timings["fit_s"] = time.perf_counter() - t

    # 5. Assign.
    t = time.perf_counter()
    Assign = ray.remote(AssignWorker).options(**worker_opts)
    todo = [i for i in range(len(shards)) if not os.path.exists(assign_part_path(out, i))]
    _log("assign: %d of %d shards already done" % (len(shards) - len(todo), len(shards)))
    counts = {i: _part_counts(assign_part_path(out, i)) for i in range(len(shards)) if i not in set(todo)}
    if todo:
        actors = [Assign.remote(clusterer_path, args.device, args.threads_per_worker)
                  for _ in range(min(args.workers, len(todo)))]
        for i, c in _run_pool(ray, actors, "assign_shard",
                              [(out, i, paths[shards[i][0]:shards[i][1]], args.test_delay) for i in todo],
                              "assign"):
            counts[i] = c
        for a in actors:
            ray.kill(a)
    sizes = np.sum([counts[i] for i in range(len(shards))], axis=0).astype(int).tolist()
    timings["assign_s"] = time.perf_counter() - t

    # 6. Name.
    t = time.perf_counter()
    clusters_path = os.path.join(out, "clusters.json")
    vocabulary = None
    if args.vocab:
        with open(args.vocab, encoding="utf-8") as vf:
            vocabulary = [line.strip() for line in vf if line.strip()]
    if args.no_names:
        names = [{"cluster": c, "name": None} for c in range(len(sizes))]
    else:
        name = ray.remote(name_clusters_task).options(num_cpus=args.fit_cpus, num_gpus=args.gpus_per_worker)
        names = ray.get(name.remote(args.model, clusterer_path, sample, vocabulary, args.template, args.device,
                                    args.fit_cpus))
    timings["name_s"] = time.perf_counter() - t

    # 7. The report a person looks at (of the sample; the parquet has every image).
    t = time.perf_counter()
    report = ray.remote(report_task).options(num_cpus=args.fit_cpus, num_gpus=args.gpus_per_worker)
    ray.get(report.remote(clusterer_path, sample, [paths[i] for i in index], names, sizes, os.path.join(out, "report"),
                          args.model, args.device, args.fit_cpus))
    timings["report_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_all
    summary = {"images": len(paths), "embedded": int(sum(sizes)), "k": len(sizes), "sample": int(len(index)),
               "seed": args.seed, "shards": len(shards),
               "clusters": [dict({k: v for k, v in n.items() if k != "members"}, sample_members=n.get("members"), size=int(sizes[n["cluster"]])) for n in names],
               "timings_this_run": timings, "assignments": os.path.join(out, "assignments"),
               "clusterer": clusterer_path, "model": clusterer_path}  # "model": the deprecated key of earlier releases
    write_atomically(clusters_path, lambda f: f.write(json.dumps(summary, indent=1).encode()))
    _log("done in %.1f s: %s, %s" % (timings["total_s"], summary["assignments"], clusters_path))
    return summary


def _fit_fields(args: argparse.Namespace) -> Dict[str, Any]:
    fields: Dict[str, Any] = {"k": args.k, "seed": args.seed}
    for item in args.fit_param or []:
        key, _, value = item.partition("=")
        if not _:
            raise SystemExit("rateclust-ray: --fit-param wants KEY=VALUE, got %r" % item)
        try:
            fields[key] = json.loads(value)
        except ValueError:
            fields[key] = value
    import rateclust
    rateclust.FitParams.defaults().updated(**fields)  # unknown names fail here, before any work
    return fields


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rateclust.ray_pipeline", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder tree of .jpg/.jpeg/.png/.webp files (recursive, sorted)")
    src.add_argument("--list", help="text file, one image path per line (relative to the list's folder)")
    src.add_argument("--parquet", help="parquet file with a column of image paths")
    p.add_argument("--path-column", default="path", help="the parquet's column of paths (default: path)")
    p.add_argument("--model", required=True, help="Hugging Face CLIP directory")
    p.add_argument("--k", type=int, required=True, help="number of clusters (0 = chosen by coding length)")
    p.add_argument("--out", required=True, help="output folder (shared by all nodes; rerun to resume)")
    p.add_argument("--sample", type=int, default=20000, help="rows the clusterer is fitted on (default 20000)")
    p.add_argument("--seed", type=int, default=42, help="seed of the sample and of the fit (default 42)")
    p.add_argument("--fit-param", action="append", metavar="KEY=VALUE",
                   help="any rateclust.FitParams field, e.g. steps=200 (repeatable)")
    p.add_argument("--shard-size", type=int, default=1024, help="images per shard (default 1024)")
    p.add_argument("--workers", type=int, default=2, help="embedding / assignment actors (default 2)")
    p.add_argument("--threads-per-worker", type=int, default=1, help="CPU threads (and Ray CPUs) per actor")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per actor (1 with --device cuda)")
    p.add_argument("--fit-cpus", type=int, default=2, help="CPU threads (and Ray CPUs) of the fit task")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="rateclust device (default cpu)")
    p.add_argument("--batch-size", type=int, default=32, help="images per CLIP forward pass (default 32)")
    p.add_argument("--vocab", help="candidate names, one per line (default: the built-in ImageNet names)")
    p.add_argument("--template", default="a photo of a {}.", help="caption template (default 'a photo of a {}.')")
    p.add_argument("--no-names", action="store_true", help="skip naming the clusters")
    p.add_argument("--address", help="Ray cluster address (default: start a local one)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    p.add_argument("--test-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    if args.shard_size <= 0 or args.workers <= 0 or args.sample < 2:
        raise SystemExit("rateclust-ray: --shard-size and --workers must be > 0 and --sample >= 2")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
