"""The NumPy API over the C ABI (re-exported by the package; see ``rateclust.__doc__``)."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import enum
import json
import os
import threading
from ctypes import byref, c_char_p, c_double, c_size_t, c_uint8, c_uint32, c_void_p
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._native import EmbedParamsC, FitParamsC, FrameC, LabelParamsC, PROGRESS_FN, lib

PathLike = Union[str, "os.PathLike[str]"]
Device = Union[str, int]
#: ``progress(stage, done, total)``; return ``False`` to cancel (the call then raises CANCELLED). An exception
#: raised inside it cancels the call and is re-raised to the caller once the library has returned.
Progress = Callable[[str, int, int], Any]


class Status(enum.IntEnum):
    """rateclust_status values (the C ABI's numbers)."""
    OK = 0
    INVALID_ARGUMENT = 1
    NON_FINITE = 2
    IO = 3
    FORMAT = 4
    DEVICE = 5
    NUMERICAL = 6
    CANCELLED = 7
    OUT_OF_MEMORY = 8
    INTERNAL = 9


class RateclustError(Exception):
    """A failed rateclust call, or input refused before reaching the library.

    Attributes: ``status`` (a :class:`Status`, or the raw int for a code this package does not know),
    ``code`` (the int), ``status_name`` (``"INVALID_ARGUMENT"``, … from ``rateclust_status_name`` without its
    ``RATECLUST_STATUS_`` prefix) and ``message`` (``rateclust_last_error()`` of the failed call, or the
    package's own text for refused input).
    """

    def __init__(self, status: int, message: str) -> None:
        self.code = int(status)
        try:
            self.status: Union[Status, int] = Status(self.code)
        except ValueError:
            self.status = self.code
        name = (lib.rateclust_status_name(self.code) or b"RATECLUST_STATUS_UNKNOWN").decode()
        self.status_name = name[len("RATECLUST_STATUS_"):] if name.startswith("RATECLUST_STATUS_") else name
        self.message = message
        super().__init__("%s (%s)" % (message, self.status_name))


def _check(status: int) -> None:
    if status != 0:
        raise RateclustError(status, (lib.rateclust_last_error() or b"").decode("utf-8", "replace"))


def _invalid(message: str) -> RateclustError:
    return RateclustError(Status.INVALID_ARGUMENT, message)


_DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}
TOWERS = {"both": 0, "images": 1, "texts": 2}
PRECISIONS = {"f32": 0, "int8": 1}
ASSIGN_RULES = {"subspace": 0, "prototype_z": 1, "prototype_c": 2, "prototype_input": 3, "neighbors_input": 4}
SAMPLE_CLUSTERINGS = {"spectral_pi": 0, "kmeans_z": 1, "kmeans_c": 2}
PIXEL_FORMATS = {"rgb8": 0, "rgba8": 1, "bgr8": 2, "bgra8": 3, "gray8": 4, "rgbx8": 5, "bgrx8": 6}


def _device(device: Device) -> int:
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
        return int(device)
    if isinstance(device, str) and device.lower() in _DEVICES:
        return _DEVICES[device.lower()]
    raise _invalid("device must be one of %s or a rateclust_device_kind int, not %r" % (sorted(_DEVICES), device))


def _choice(table: Dict[str, int], value: str, what: str) -> int:
    if isinstance(value, str) and value.lower() in table:
        return table[value.lower()]
    raise _invalid("%s must be one of %s, not %r" % (what, sorted(table), value))


# --- arrays ------------------------------------------------------------------------------------------------

def as_rows(x: Any, name: str = "x") -> np.ndarray:
    """``x`` as a C-contiguous native float32 2-D array: ``x`` itself (no copy) when it already is one, else a
    converted copy (other float/int dtypes, non-contiguous views, byte-swapped data). Refuses, with
    :class:`RateclustError` INVALID_ARGUMENT, arrays that are not 2-D or whose dtype is not a real number."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise _invalid("%s: expected real numbers (float32 preferred), got dtype %s" % (name, a.dtype))
    if a.ndim != 2:
        raise _invalid("%s: expected a 2-D array (n, dim), got shape %s%s" % (
            name, a.shape, " (use x.reshape(1, -1) for one row)" if a.ndim == 1 else ""))
    if a.dtype == np.float32 and a.dtype.isnative and a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.ascontiguousarray(a, dtype=np.float32)


def _as_labels(y: Any, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and a.size and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            pass  # integral floats are accepted
        elif not (a.dtype.kind == "f" and a.size == 0):
            raise _invalid("%s: expected integer labels, got dtype %s" % (name, a.dtype))
    if a.ndim != 1:
        raise _invalid("%s: expected a 1-D array of labels, got shape %s" % (name, a.shape))
    if a.dtype == np.int64 and a.dtype.isnative and a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.ascontiguousarray(a, dtype=np.int64)


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class _Progress:
    """Bridges a Python progress callable to the C callback (see :data:`Progress`)."""

    def __init__(self, fn: Optional[Progress]) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.c_fn = PROGRESS_FN(self._call) if fn is not None else PROGRESS_FN()

    def _call(self, _user: Any, stage: Optional[bytes], done: int, total: int) -> int:
        try:
            keep_going = self.fn(stage.decode("utf-8", "replace") if stage else "", done, total)  # type: ignore[misc]
            return 1 if keep_going is False else 0
        except BaseException as e:  # noqa: B902 — must not unwind through C
            self.error = e
            return 1

    def finish(self, status: int) -> None:
        if self.error is not None:
            raise self.error
        _check(status)


def _read_string(call: Callable[[Any, int, Any], int]) -> str:
    buf = ctypes.create_string_buffer(256)
    needed = c_size_t(0)
    _check(call(buf, len(buf), byref(needed)))
    if needed.value > len(buf):
        buf = ctypes.create_string_buffer(needed.value)
        _check(call(buf, len(buf), byref(needed)))
    return buf.value.decode("utf-8", "replace")


# --- library-wide --------------------------------------------------------------------------------------------

def version() -> str:
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return lib.rateclust_version().decode()


def abi_version() -> int:
    """The loaded library's ABI version (RATECLUST_ABI_VERSION)."""
    return int(lib.rateclust_abi_version())


def device_count() -> int:
    """Number of usable CUDA devices (0 without a driver or GPU)."""
    return int(lib.rateclust_device_count())


def device_info(device: Device = "auto", ordinal: int = 0) -> str:
    """Which device a call with ``device`` would use; with "auto" falling back to the CPU it says why."""
    return _read_string(lambda b, c, n: lib.rateclust_device_info(_device(device), ordinal, b, c, n))


def set_gpu(ordinal: int) -> None:
    """Makes GPU ``ordinal`` the device of every later CUDA call in this process (model load, fit, assign,
    select_k, set_k); handles already created keep theirs. DEVICE error naming the count if there is no such GPU."""
    _check(lib.rateclust_set_gpu(int(ordinal)))


def cpu_threads() -> int:
    """Number of CPU threads the library uses."""
    n = c_uint32()
    _check(lib.rateclust_cpu_threads(byref(n)))
    return int(n.value)


def set_cpu_threads(n: int) -> None:
    """Sets the library's CPU thread count (0 = one per core). Call before any computing call: once the pool
    is built only the running count is accepted (INVALID_ARGUMENT otherwise)."""
    _check(lib.rateclust_set_cpu_threads(int(n)))


def default_vocabulary() -> List[str]:
    """The built-in candidate cluster names (ImageNet-1k class names, deduplicated)."""
    def name(i: int) -> str:
        return _read_string(lambda b, c, n: lib.rateclust_default_vocabulary_name(i, b, c, n))
    return [name(i) for i in range(lib.rateclust_default_vocabulary_size())]


class Metrics(NamedTuple):
    """Clustering accuracy (Hungarian matching), normalised mutual information, adjusted Rand index."""
    accuracy: float
    nmi: float
    ari: float


def metrics(pred: npt.ArrayLike, truth: npt.ArrayLike) -> Metrics:
    """Scores labelling ``pred`` against ``truth`` (1-D integer arrays of equal length, any label values)."""
    p, t = _as_labels(pred, "pred"), _as_labels(truth, "truth")
    if len(p) != len(t):
        raise _invalid("metrics: pred has %d labels, truth %d" % (len(p), len(t)))
    acc, nmi, ari = c_double(), c_double(), c_double()
    _check(lib.rateclust_metrics(_ptr(p), _ptr(t), len(p), byref(acc), byref(nmi), byref(ari)))
    return Metrics(acc.value, nmi.value, ari.value)


# --- fit parameters ------------------------------------------------------------------------------------------

def _c_name(field: str) -> str:
    return "lambda_" if field == "lambda_" else field


@dataclasses.dataclass
class FitParams:
    """Every setting of a fit (``rateclust_fit_params``; README.md "Defaults" states the automatic rules).

    A zero in ``k``, ``k_max``, ``hidden``, ``zdim``, ``batch``, ``steps``, ``warmup``, ``eta``, ``lr`` or
    ``lr_cluster`` means "automatic" (derived from the data). ``k = 0`` chooses k in 2..=k_max by coding length.
    ``assign_rule`` is one of :data:`ASSIGN_RULES` (name or value), ``sample_clustering`` one of
    :data:`SAMPLE_CLUSTERINGS`. ``lambda_`` is the header's ``lambda``. Build with :meth:`defaults` (the
    library's recommended settings) or :meth:`preset`, then change fields (``dataclasses.replace`` works).
    """
    k: int = 0
    k_max: int = 0
    hidden: int = 0
    zdim: int = 0
    eta: float = 0.0
    eps_sq: float = 0.1
    gamma: float = 1.0
    lambda_: float = 0.05
    sinkhorn_half_iters: int = 5
    exact_sinkhorn_gradient: bool = False
    batch: int = 0
    steps: int = 0
    warmup: int = 0
    head_restarts: int = 1
    lr: float = 0.0
    lr_cluster: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    weight_decay_cluster: float = 0.0
    seed: int = 42
    single_head: bool = False
    normalize_input: bool = True
    spectral_sample: int = 0
    kmeans_restarts: int = 0
    assign_rule: Union[int, str] = 0
    subspace_rank: int = 0
    sample_clustering: Union[int, str] = 0
    kmeans_candidates: int = 0

    @classmethod
    def _from_c(cls, c: FitParamsC) -> "FitParams":
        return cls(**{f.name: getattr(c, f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def defaults(cls, **overrides: Any) -> "FitParams":
        """The library's default parameters (``rateclust_fit_default_params``), with ``overrides`` applied."""
        return cls._from_c(lib.rateclust_fit_default_params()).updated(**overrides)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "FitParams":
        """A named preset ("auto", "cifar10", "imagenet"; ``rateclust_fit_preset_params``) with ``overrides``."""
        c = FitParamsC()
        _check(lib.rateclust_fit_preset_params(name.encode(), byref(c)))
        return cls._from_c(c).updated(**overrides)

    def updated(self, **overrides: Any) -> "FitParams":
        """A copy with the named fields changed; ``lambda`` is accepted for ``lambda_``; unknown names raise."""
        known = {f.name for f in dataclasses.fields(self)}
        fixed = {}
        for key, value in overrides.items():
            key = "lambda_" if key == "lambda" else key
            if key not in known:
                raise TypeError("unknown fit parameter %r (known: %s)" % (key, ", ".join(sorted(known))))
            fixed[key] = value
        return dataclasses.replace(self, **fixed)

    def _to_c(self) -> FitParamsC:
        c = FitParamsC()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "assign_rule" and isinstance(value, str):
                if value not in ASSIGN_RULES:
                    raise _invalid("assign_rule must be one of %s, not %r" % (sorted(ASSIGN_RULES), value))
                value = ASSIGN_RULES[value]
            if f.name == "sample_clustering" and isinstance(value, str):
                if value not in SAMPLE_CLUSTERINGS:
                    raise _invalid("sample_clustering must be one of %s, not %r" % (sorted(SAMPLE_CLUSTERINGS), value))
                value = SAMPLE_CLUSTERINGS[value]
            try:
                setattr(c, f.name, value)
            except (TypeError, ValueError) as e:
                raise _invalid("fit parameter %s = %r: %s" % (f.name, value, e)) from None
            if f.type in ("int", "Union[int, str]") and isinstance(value, (int, np.integer)) and value < 0:
                raise _invalid("fit parameter %s must be >= 0, not %d" % (f.name, value))
        return c


# --- handles -------------------------------------------------------------------------------------------------

class _Owned:
    """Owns one library handle: freed by close(), at the end of a ``with`` block, or when collected."""
    _kind = "handle"
    _h: Optional[c_void_p] = None

    def _handle(self) -> c_void_p:
        if not self._h:
            raise _invalid("the %s is closed" % self._kind)
        return self._h

    def _free(self, h: c_void_p) -> None:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """True once close() has run."""
        return not self._h

    def close(self) -> None:
        """Frees the library handle now (idempotent); later calls raise INVALID_ARGUMENT."""
        h, self._h = self._h, None
        if h:
            self._free(h)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter shutdown the module's globals may already be gone
            pass

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Clusterer(_Owned):
    """A fitted clusterer (``rateclust_clusterer``). Create with :meth:`fit` or :meth:`load`; a context manager.

    Calls on one clusterer are serialised by a lock (the C handle is not safe from two threads at once); the
    GIL is released while the library computes, so other Python threads run meanwhile.
    """
    _kind = "clusterer"

    def __init__(self, handle: c_void_p) -> None:
        self._h = handle
        self._lock = threading.RLock()

    @classmethod
    def fit(cls, x: npt.ArrayLike, k: Optional[int] = None, *, params: Optional[FitParams] = None,
            device: Device = "auto", progress: Optional[Progress] = None, **fields: Any) -> "Clusterer":
        """Fits on features ``x`` (n × dim; float32 C-contiguous is used in place, anything else converted).

        ``params`` defaults to :meth:`FitParams.defaults`; ``k`` and any FitParams field given as a keyword
        (``steps=100``, ``seed=7``, ``assign_rule="prototype_z"``, …) override it. ``k=None`` keeps params' k
        (0 in the defaults: chosen by coding length). Progress stages: "train", "select-k", "cluster",
        "consensus", "refine".
        """
        p = params if params is not None else FitParams.defaults()
        if k is not None:
            fields["k"] = k
        c_params = p.updated(**fields)._to_c()
        a = as_rows(x, "fit: x")
        out = c_void_p()
        bridge = _Progress(progress)
        status = lib.rateclust_fit(_ptr(a), a.shape[0], a.shape[1], byref(c_params), _device(device), bridge.c_fn,
                                   None, byref(out))
        c = cls(out)  # owns the handle even if finish() raises (it is NULL on failure)
        bridge.finish(status)
        return c

    @classmethod
    def load(cls, path: PathLike) -> "Clusterer":
        """Loads a clusterer saved by :meth:`save` (FORMAT for a corrupted file or another version, IO if missing)."""
        out = c_void_p()
        _check(lib.rateclust_clusterer_load(os.fsencode(path), byref(out)))
        return cls(out)

    def save(self, path: PathLike) -> None:
        """Saves to ``path`` (safetensors; written to a temporary file, then renamed)."""
        with self._lock:
            _check(lib.rateclust_clusterer_save(self._handle(), os.fsencode(path)))

    def _info(self) -> Tuple[int, int]:
        k, d = c_size_t(), c_size_t()
        with self._lock:
            _check(lib.rateclust_clusterer_info(self._handle(), byref(k), byref(d)))
        return k.value, d.value

    @property
    def k(self) -> int:
        """Number of clusters."""
        return self._info()[0]

    @property
    def dim(self) -> int:
        """Feature dimension the clusterer was fitted on."""
        return self._info()[1]

    def assign(self, x: npt.ArrayLike, *, device: Device = "auto",
               progress: Optional[Progress] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``(labels, confidence)`` for each row of ``x`` (n × dim): int64 cluster ids in [0, k) and float32
        margins between the best and second-best cluster score (higher = surer)."""
        a = as_rows(x, "assign: x")
        n = a.shape[0]
        labels, confidence = np.empty(n, np.int64), np.empty(n, np.float32)
        bridge = _Progress(progress)
        with self._lock:
            status = lib.rateclust_assign(self._handle(), _ptr(a), n, a.shape[1], _device(device), _ptr(labels),
                                          _ptr(confidence), bridge.c_fn, None)
        bridge.finish(status)
        return labels, confidence

    def assign_scores(self, x: npt.ArrayLike, *, progress: Optional[Progress] = None) -> np.ndarray:
        """The n × k float32 per-cluster scores behind :meth:`assign`'s labels (a row's argmax is its label): with
        the default rule ``neighbors_input`` the fraction of the point's nearest fitted points in each cluster (a
        soft membership, rows sum to 1); cosines with the prototypes for the prototype rules; squared projection
        norms for ``subspace``. Runs on the CPU."""
        a = as_rows(x, "assign_scores: x")
        n = a.shape[0]
        bridge = _Progress(progress)
        with self._lock:
            k = self._info()[0]
            scores = np.empty((n, k), np.float32)
            status = lib.rateclust_assign_scores(self._handle(), _ptr(a), n, a.shape[1], _ptr(scores), scores.size,
                                                 bridge.c_fn, None)
        bridge.finish(status)
        return scores

    def select_k(self, x: npt.ArrayLike, candidates: Iterable[int], *,
                 device: Device = "auto") -> Tuple[np.ndarray, int]:
        """``(curve, best_k)``: coding length L(k) per candidate (float64) on a sample of ``x``, and its minimiser;
        no retraining (follow with :meth:`set_k`)."""
        a = as_rows(x, "select_k: x")
        cand = [int(c) for c in candidates]
        if not cand or min(cand) < 0:
            raise _invalid("select_k: candidates must be a non-empty list of k >= 2, got %r" % (cand,))
        c_cand = (c_size_t * len(cand))(*cand)
        curve, best = np.empty(len(cand), np.float64), c_size_t()
        with self._lock:
            _check(lib.rateclust_select_k(self._handle(), _ptr(a), a.shape[0], a.shape[1], c_cand, len(cand),
                                          _device(device), _ptr(curve), byref(best)))
        return curve, int(best.value)

    def set_k(self, x: npt.ArrayLike, k: int, *, device: Device = "auto") -> None:
        """Re-derives the clusters for ``k`` from features ``x`` without retraining the head."""
        a = as_rows(x, "set_k: x")
        if k < 0:
            raise _invalid("set_k: k must be >= 2, got %d" % k)
        with self._lock:
            _check(lib.rateclust_clusterer_set_k(self._handle(), _ptr(a), a.shape[0], a.shape[1], k, _device(device)))

    def close(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is None:
            return super().close()
        with lock:
            super().close()

    def _free(self, h: c_void_p) -> None:
        lib.rateclust_clusterer_free(h)

    def __repr__(self) -> str:
        return "<rateclust.Clusterer closed>" if self.closed else "<rateclust.Clusterer k=%d dim=%d>" % self._info()


# --- CLIP ----------------------------------------------------------------------------------------------------

ImageArray = npt.NDArray[np.uint8]


class Model(_Owned):
    """A CLIP model loaded from a Hugging Face directory (``rateclust_model``); a context manager.

    Embed calls return float32 arrays (n × width): L2-normalised projected embeddings by default
    (``normalize=False`` keeps them raw, ``pooled=True`` returns the tower's pooled output). Several threads may
    embed with one model at once; the GIL is released while the library computes.
    """
    _kind = "model"

    def __init__(self, path: PathLike, device: Device = "auto", towers: str = "both", precision: str = "f32") -> None:
        """``towers``: "both", "images" or "texts" (the other tower's weights are never read: about half the
        memory). ``precision``: "f32", or "int8" (the encoder layers' linear layers in int8, CPU only: about a
        quarter of their memory, about twice as fast; embeddings within 0.999 cosine of f32's)."""
        self._cv = threading.Condition()
        self._active = 0  # calls in progress: close() waits for them (several threads may embed at once)
        h = c_void_p()
        _check(lib.rateclust_model_load_precision(os.fsencode(path), _device(device), _choice(TOWERS, towers, "towers"),
                                                  _choice(PRECISIONS, precision, "precision"), byref(h)))
        self._h = h
        self.path = os.fspath(path)

    @contextlib.contextmanager
    def _using(self) -> Iterator[c_void_p]:
        with self._cv:
            h = self._handle()
            self._active += 1
        try:
            yield h
        finally:
            with self._cv:
                self._active -= 1
                self._cv.notify_all()

    def close(self) -> None:
        """Frees the model once the calls in progress on other threads have returned (idempotent)."""
        cv = getattr(self, "_cv", None)
        if cv is None:
            return super().close()
        with cv:
            while self._active:
                cv.wait()
            super().close()

    @property
    def embed_dim(self) -> int:
        """Width of the projected (shared image–text) embeddings."""
        d = c_size_t()
        with self._using() as h:
            _check(lib.rateclust_model_embed_dim(h, byref(d)))
        return d.value

    @property
    def image_size(self) -> int:
        """Side in pixels of the preprocessed square images (for :meth:`embed_pixels`)."""
        s = c_size_t()
        with self._using() as h:
            _check(lib.rateclust_model_image_size(h, byref(s)))
        return s.value

    def output_dim(self, images: bool = True, pooled: bool = False) -> int:
        """Row width an embed call returns for images (or texts) with ``pooled``."""
        p = lib.rateclust_embed_default_params()
        p.pooled = pooled
        d = c_size_t()
        with self._using() as h:
            _check(lib.rateclust_model_output_dim(h, images, byref(p), byref(d)))
        return d.value

    def _embed(self, images: bool, n: int, call: Callable[..., int], normalize: bool, pooled: bool,
               batch_size: Optional[int], progress: Optional[Progress]) -> np.ndarray:
        p = lib.rateclust_embed_default_params()
        p.normalize, p.pooled = bool(normalize), bool(pooled)
        if batch_size is not None:
            if batch_size <= 0:
                raise _invalid("batch_size must be > 0, got %d" % batch_size)
            p.batch_size = batch_size
        bridge = _Progress(progress)
        p.progress = bridge.c_fn
        d = c_size_t()
        with self._using() as h:
            _check(lib.rateclust_model_output_dim(h, images, byref(p), byref(d)))
            out = np.empty((n, d.value), np.float32)
            if n == 0:
                return out
            status = call(h, byref(p), _ptr(out), out.size)
        bridge.finish(status)
        return out

    def embed_texts(self, texts: Sequence[str], *, normalize: bool = True, pooled: bool = False,
                    batch_size: Optional[int] = None, progress: Optional[Progress] = None) -> np.ndarray:
        """Embeds UTF-8 texts (CLIP BPE, truncated to the context length); needs vocab.json + merges.txt."""
        if isinstance(texts, str):
            raise _invalid("embed_texts takes a list of texts, not one str")
        enc = (c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        return self._embed(False, len(texts), lambda h, p, o, L: lib.rateclust_embed_texts(h, enc, len(texts), p, o, L),
                           normalize, pooled, batch_size, progress)

    def embed_image_files(self, paths: Sequence[PathLike], *, normalize: bool = True, pooled: bool = False,
                          batch_size: Optional[int] = None, progress: Optional[Progress] = None) -> np.ndarray:
        """Embeds image files (JPEG, PNG, WebP; EXIF orientation applied), row i for ``paths[i]``. A file that is
        missing or does not decode fails the whole call (IO or FORMAT, the message names it)."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise _invalid("embed_image_files takes a list of paths, not one path")
        enc = (c_char_p * len(paths))(*[os.fsencode(p) for p in paths])
        return self._embed(True, len(paths),
                           lambda h, p, o, L: lib.rateclust_embed_image_files(h, enc, len(paths), p, o, L),
                           normalize, pooled, batch_size, progress)

    def embed_images_encoded(self, blobs: Sequence[Union[bytes, bytearray, memoryview, np.ndarray]], *,
                             normalize: bool = True, pooled: bool = False, batch_size: Optional[int] = None,
                             progress: Optional[Progress] = None) -> np.ndarray:
        """Embeds encoded images held in memory (JPEG, PNG, WebP bytes; used in place, not copied)."""
        if isinstance(blobs, (bytes, bytearray, memoryview)):
            raise _invalid("embed_images_encoded takes a list of encoded images, not one")
        keep = [np.frombuffer(b, np.uint8) if not isinstance(b, np.ndarray) else np.ascontiguousarray(b).view(np.uint8)
                .reshape(-1) for b in blobs]
        ptrs = (ctypes.POINTER(c_uint8) * len(keep))(*[ctypes.cast(_ptr(b), ctypes.POINTER(c_uint8)) for b in keep])
        sizes = (c_size_t * len(keep))(*[b.size for b in keep])
        return self._embed(True, len(keep),
                           lambda h, p, o, L: lib.rateclust_embed_images_encoded(h, ptrs, sizes, len(keep), p, o, L),
                           normalize, pooled, batch_size, progress)

    def embed_image_arrays(self, images: Union[ImageArray, Sequence[ImageArray]], *, channel_order: str = "rgb",
                           normalize: bool = True, pooled: bool = False, batch_size: Optional[int] = None,
                           progress: Optional[Progress] = None) -> np.ndarray:
        """Embeds decoded uint8 images: a list of H×W×3 (RGB, or BGR with ``channel_order="bgr"``), H×W×4
        (RGBA/BGRA, composited onto white) or H×W (gray) arrays, or one N×H×W×C batch. Rows may be padded
        (any row stride): pixels are read in place when each row's pixels are contiguous, else copied."""
        if channel_order not in ("rgb", "bgr"):
            raise _invalid("channel_order must be 'rgb' or 'bgr', not %r" % (channel_order,))
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        keep, frames = [], (FrameC * len(images))()
        for i, img in enumerate(images):
            a = np.asarray(img)
            if a.dtype != np.uint8:
                raise _invalid("image %d: expected uint8 pixels, got dtype %s (scale and convert first)" % (i, a.dtype))
            if a.ndim == 3 and a.shape[2] == 1:
                a = a[:, :, 0]
            if a.ndim == 2:
                a = a[:, :, None]
            if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
                raise _invalid("image %d: expected H×W, H×W×3 or H×W×4 uint8, got shape %s" % (i, np.shape(img)))
            h, w, ch = a.shape
            if h == 0 or w == 0:
                raise _invalid("image %d: empty (shape %s)" % (i, a.shape))
            if not (a.strides[2] == 1 and a.strides[1] == ch and a.strides[0] >= w * ch):
                a = np.ascontiguousarray(a)
            fmt = {1: "gray8", 3: channel_order + "8", 4: channel_order + "a8"}[ch]
            keep.append(a)
            frames[i] = FrameC(ctypes.cast(_ptr(a), ctypes.POINTER(c_uint8)), w, h, a.strides[0], PIXEL_FORMATS[fmt])
        return self._embed(True, len(keep),
                           lambda hd, p, o, L: lib.rateclust_embed_frames(hd, frames, len(keep), p, o, L),
                           normalize, pooled, batch_size, progress)

    def embed_pixels(self, pixels: npt.ArrayLike, *, normalize: bool = True, pooled: bool = False,
                     batch_size: Optional[int] = None, progress: Optional[Progress] = None) -> np.ndarray:
        """Embeds already preprocessed images: N × 3 × S × S float32 (CHW, normalised like CLIPImageProcessor)."""
        a = np.asarray(pixels)
        s = self.image_size
        if a.dtype.kind != "f" or a.ndim != 4 or a.shape[1:] != (3, s, s):
            raise _invalid("embed_pixels: expected float N×3×%d×%d, got %s %s" % (s, s, a.dtype, a.shape))
        a = np.ascontiguousarray(a, dtype=np.float32)
        return self._embed(True, a.shape[0],
                           lambda h, p, o, L: lib.rateclust_embed_pixels(h, _ptr(a), a.shape[0], p, o, L),
                           normalize, pooled, batch_size, progress)

    def _free(self, h: c_void_p) -> None:
        lib.rateclust_model_free(h)

    def __repr__(self) -> str:
        return "<rateclust.Model %r%s>" % (getattr(self, "path", "?"), " closed" if self.closed else "")


# --- naming ---------------------------------------------------------------------------------------------------

def label_clusters(image_emb: npt.ArrayLike, labels: npt.ArrayLike, k: int, text_emb: npt.ArrayLike, *,
                   logit_scale: Optional[float] = None, top: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """CPP's self-labeling vote: for each of ``k`` clusters the index of the winning caption (int64, -1 for an
    empty cluster) and its mean vote share (float32). ``image_emb``: n × dim image embeddings, ``labels``: their
    clusters, ``text_emb``: one row per candidate caption (same dim). Defaults: logit scale 100, top 5."""
    img, txt, lab = as_rows(image_emb, "image_emb"), as_rows(text_emb, "text_emb"), _as_labels(labels, "labels")
    if len(lab) != img.shape[0]:
        raise _invalid("label_clusters: %d labels for %d image rows" % (len(lab), img.shape[0]))
    if img.shape[1] != txt.shape[1]:
        raise _invalid("label_clusters: image rows have dim %d, text rows %d" % (img.shape[1], txt.shape[1]))
    params = lib.rateclust_label_default_params()
    if logit_scale is not None:
        params.logit_scale = logit_scale
    if top is not None:
        params.top = top
    caption, score = np.empty(k, np.int64), np.empty(k, np.float32)
    _check(lib.rateclust_label_clusters(_ptr(img), img.shape[0], img.shape[1], _ptr(lab), k, _ptr(txt), txt.shape[0],
                                        byref(params), _ptr(caption), _ptr(score)))
    return caption, score


class ClusterName(NamedTuple):
    """One named cluster: its id, the winning name (None if empty), the caption's index, vote share, members."""
    cluster: int
    name: Optional[str]
    caption: int
    score: float
    members: int


def name_clusters(model: Model, image_emb: npt.ArrayLike, labels: npt.ArrayLike, k: int, *,
                  vocabulary: Optional[Sequence[str]] = None, template: str = "a photo of a {}.",
                  logit_scale: Optional[float] = None, top: Optional[int] = None) -> List[ClusterName]:
    """Names ``k`` clusters with ``model``'s text encoder: embeds ``template.format(name)`` for every name of
    ``vocabulary`` (default: :func:`default_vocabulary`) and runs :func:`label_clusters` (as ``rateclust label``)."""
    names = list(vocabulary) if vocabulary is not None else default_vocabulary()
    if "{}" not in template:
        raise _invalid("template must contain {}: %r" % (template,))
    text = model.embed_texts([template.format(n) for n in names])
    lab = _as_labels(labels, "labels")
    caption, score = label_clusters(image_emb, lab, k, text, logit_scale=logit_scale, top=top)
    members = np.bincount(lab[(lab >= 0) & (lab < k)], minlength=k)
    return [ClusterName(c, names[caption[c]] if caption[c] >= 0 else None, int(caption[c]), float(score[c]),
                        int(members[c])) for c in range(k)]


# --- report ---------------------------------------------------------------------------------------------------

def write_report(out_dir: str, files: Sequence[str], labels: npt.ArrayLike, confidence: npt.ArrayLike,
                 clusters: Sequence[Dict[str, Any]], *, images_dir: str = "", model_dir: str = "",
                 skipped: Sequence[Tuple[str, str]] = (), k_curve: Optional[Sequence[Tuple[int, float]]] = None) -> None:
    """Writes ``assignments.csv``, ``clusters.json`` and a self-contained ``report.html`` into ``out_dir``, as
    ``rateclust cluster`` does (``rateclust_write_report``). ``files``: image paths (relative to ``images_dir``,
    from which thumbnails are read), one ``labels``/``confidence`` entry each; ``clusters``: one dict per cluster
    with ``name`` (or None), ``score``, ``size``, optionally ``runners_up`` [(name, score)] and ``central`` (rows of
    ``files``, most central first)."""
    lab = _as_labels(labels, "labels")
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    doc = {
        "images_dir": images_dir, "model_dir": model_dir, "files": [str(f) for f in files],
        "labels": [int(v) for v in lab], "confidence": [float(v) for v in conf],
        "clusters": [{"name": c.get("name"), "score": float(c.get("score") or 0.0), "size": int(c.get("size", 0)),
                      "runners_up": [[str(n), float(v)] for n, v in c.get("runners_up", [])],
                      "central": [int(i) for i in c.get("central", [])]} for c in clusters],
        "skipped": [[str(f), str(e)] for f, e in skipped],
        "k_curve": None if k_curve is None else [[int(k), float(v)] for k, v in k_curve],
    }
    _check(lib.rateclust_write_report(json.dumps(doc).encode("utf-8"), os.fsencode(out_dir)))
