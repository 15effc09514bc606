"""rateclust from Python through ctypes: no numpy, no compiler, only the shared library.

Copy this file next to your code. The library is found, in order, at:
  1. $RATECLUST_LIB (the path of librateclust.so / .dylib / rateclust.dll),
  2. next to this module,
  3. ../../target/release/ relative to this module (a checkout after `cargo build --release`),
  4. the system loader's search path.

Float inputs may be any C-contiguous buffer of float32 (array('f'), numpy float32 arrays, memoryviews; used
in place) or any other buffer or flat/nested sequence of numbers (converted into array('f')). Outputs are
array.array objects ('f' float32, 'q' int64, 'd' float64) — `numpy.frombuffer(a, dtype=np.float32)` views them for free.
Every failed call raises RateclustError(status, message).

    import rateclust
    with rateclust.Clusterer.fit(x, dim=512, k=10, hidden=512, zdim=64, steps=100) as c:
        labels, confidence = c.assign(x)
        c.save("model.safetensors")
"""

import ctypes
import os
import sys
from array import array
from ctypes import (POINTER, Structure, byref, c_bool, c_char, c_char_p, c_double, c_float, c_int, c_int32,
                    c_int64, c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)

ABI_VERSION = 1  # RATECLUST_ABI_VERSION of the header these declarations mirror

# rateclust_status values.
STATUS_NAMES = {
    0: "OK", 1: "INVALID_ARGUMENT", 2: "NON_FINITE", 3: "IO", 4: "FORMAT", 5: "DEVICE", 6: "NUMERICAL",
    7: "CANCELLED", 8: "OUT_OF_MEMORY", 9: "INTERNAL",
}
OK, INVALID_ARGUMENT, NON_FINITE, IO, FORMAT, DEVICE, NUMERICAL, CANCELLED, OUT_OF_MEMORY, INTERNAL = range(10)

# rateclust_device_kind, rateclust_assign_rule, rateclust_pixel_format values (passed as uint32_t).
DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}
ASSIGN_RULES = {"subspace": 0, "prototype_z": 1, "prototype_c": 2, "prototype_input": 3, "neighbors_input": 4}
PIXEL_FORMATS = {"rgb8": 0, "rgba8": 1, "bgr8": 2, "bgra8": 3, "gray8": 4, "rgbx8": 5, "bgrx8": 6}


class RateclustError(Exception):
    """A failed rateclust call: `status` is the C status code, `status_name` its name, `message` the text."""

    def __init__(self, status, message):
        self.status = status
        self.status_name = STATUS_NAMES.get(status, str(status))
        self.message = message
        super().__init__("%s (%s)" % (message, self.status_name))


# --- C declarations (mirror include/rateclust.h field for field) -------------------------------------------

PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_char_p, c_uint64, c_uint64)
EMBED_PROGRESS_FN = ctypes.CFUNCTYPE(c_int32, c_void_p, c_char_p, c_uint64, c_uint64)


class FitParams(Structure):
    _fields_ = [
        ("k", c_size_t), ("k_max", c_size_t), ("hidden", c_size_t), ("zdim", c_size_t), ("eta", c_double), ("eps_sq", c_double),
        ("gamma", c_double), ("lambda_", c_double), ("sinkhorn_half_iters", c_size_t),
        ("exact_sinkhorn_gradient", c_bool), ("batch", c_size_t), ("steps", c_size_t), ("warmup", c_size_t),
        ("head_restarts", c_size_t),
        ("lr", c_double), ("lr_cluster", c_double), ("momentum", c_double), ("weight_decay", c_double),
        ("weight_decay_cluster", c_double), ("seed", c_uint64), ("single_head", c_bool),
        ("normalize_input", c_bool), ("spectral_sample", c_size_t), ("kmeans_restarts", c_size_t),
        ("assign_rule", c_uint32), ("subspace_rank", c_size_t), ("sample_clustering", c_uint32),
        ("kmeans_candidates", c_size_t),
    ]


class EmbedParams(Structure):
    _fields_ = [("normalize", c_bool), ("pooled", c_bool), ("batch_size", c_uint32),
                ("progress", EMBED_PROGRESS_FN), ("progress_user_data", c_void_p)]


class Frame(Structure):
    _fields_ = [("data", POINTER(c_uint8)), ("width", c_uint32), ("height", c_uint32),
                ("stride_bytes", c_size_t), ("format", c_uint32)]


class LabelParams(Structure):
    _fields_ = [("logit_scale", c_float), ("top", c_uint32)]


def _find_library():
    env = os.environ.get("RATECLUST_LIB")
    if env:
        return env
    names = {"darwin": ["librateclust.dylib"], "win32": ["rateclust.dll"]}.get(sys.platform, ["librateclust.so"])
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (here, os.path.join(here, "..", "..", "target", "release")):
        for n in names:
            if os.path.exists(os.path.join(d, n)):
                return os.path.join(d, n)
    return names[0]  # let the loader search its path


_lib = ctypes.CDLL(_find_library())
_P = POINTER
_f32, _i64, _f64, _sz = _P(c_float), _P(c_int64), _P(c_double), _P(c_size_t)
_SIGNATURES = {
    "rateclust_last_error": (c_char_p, []),
    "rateclust_version": (c_char_p, []),
    "rateclust_abi_version": (c_uint32, []),
    "rateclust_device_count": (c_uint32, []),
    "rateclust_device_info": (c_int, [c_uint32, c_uint32, c_char_p, c_size_t, _sz]),
    "rateclust_cpu_threads": (c_int, [_P(c_uint32)]),
    "rateclust_fit_default_params": (FitParams, []),
    "rateclust_fit_preset_params": (c_int, [c_char_p, _P(FitParams)]),
    "rateclust_fit": (c_int, [_f32, c_size_t, c_size_t, _P(FitParams), c_uint32, PROGRESS_FN, c_void_p,
                              _P(c_void_p)]),
    "rateclust_clusterer_free": (None, [c_void_p]),
    "rateclust_clusterer_info": (c_int, [c_void_p, _sz, _sz]),
    "rateclust_assign": (c_int, [c_void_p, _f32, c_size_t, c_size_t, c_uint32, _i64, _f32, PROGRESS_FN, c_void_p]),
    "rateclust_select_k": (c_int, [c_void_p, _f32, c_size_t, c_size_t, _sz, c_size_t, c_uint32, _f64, _sz]),
    "rateclust_clusterer_set_k": (c_int, [c_void_p, _f32, c_size_t, c_size_t, c_size_t, c_uint32]),
    "rateclust_metrics": (c_int, [_i64, _i64, c_size_t, _f64, _f64, _f64]),
    "rateclust_clusterer_save": (c_int, [c_void_p, c_char_p]),
    "rateclust_clusterer_load": (c_int, [c_char_p, _P(c_void_p)]),
    "rateclust_embed_default_params": (EmbedParams, []),
    "rateclust_model_load": (c_int, [c_char_p, c_uint32, _P(c_void_p)]),
    "rateclust_model_free": (None, [c_void_p]),
    "rateclust_model_embed_dim": (c_int, [c_void_p, _sz]),
    "rateclust_model_output_dim": (c_int, [c_void_p, c_bool, _P(EmbedParams), _sz]),
    "rateclust_model_image_size": (c_int, [c_void_p, _sz]),
    "rateclust_embed_image_files": (c_int, [c_void_p, _P(c_char_p), c_size_t, _P(EmbedParams), _f32, c_size_t]),
    "rateclust_embed_images_encoded": (c_int, [c_void_p, _P(_P(c_uint8)), _sz, c_size_t, _P(EmbedParams), _f32,
                                               c_size_t]),
    "rateclust_embed_frames": (c_int, [c_void_p, _P(Frame), c_size_t, _P(EmbedParams), _f32, c_size_t]),
    "rateclust_embed_texts": (c_int, [c_void_p, _P(c_char_p), c_size_t, _P(EmbedParams), _f32, c_size_t]),
    "rateclust_label_default_params": (LabelParams, []),
    "rateclust_label_clusters": (c_int, [_f32, c_size_t, c_size_t, _i64, c_size_t, _f32, c_size_t,
                                         _P(LabelParams), _i64, _f32]),
    "rateclust_default_vocabulary_size": (c_size_t, []),
    "rateclust_default_vocabulary_name": (c_int, [c_size_t, c_char_p, c_size_t, _sz]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(_lib, _name)
    _fn.restype, _fn.argtypes = _res, _args

if _lib.rateclust_abi_version() != ABI_VERSION:
    raise ImportError("rateclust: the library has ABI version %d, this module was written for %d"
                      % (_lib.rateclust_abi_version(), ABI_VERSION))


# --- helpers ---------------------------------------------------------------------------------------------

def _check(status):
    if status != OK:
        raise RateclustError(status, (_lib.rateclust_last_error() or b"").decode("utf-8", "replace"))


def _device(device):
    if isinstance(device, int):
        return device
    try:
        return DEVICES[device.lower()]
    except KeyError:
        raise ValueError("device must be one of %s, not %r" % (sorted(DEVICES), device)) from None


def _flatten(values):
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _flatten(v)
        else:
            yield v


def _as_array(data, typecode):
    """`data` as a contiguous buffer of `typecode` items: itself (no copy) if it already is one, else a copy
    converted item by item into array(typecode)."""
    if isinstance(data, array) and data.typecode == typecode:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        return array(typecode, _flatten(data))
    fmt = view.format.lstrip("<=@")
    # 'l' is int64 on LP64 platforms (numpy's int64 buffers say 'l'); 'B'/'b'/'c' are all plain bytes.
    same = fmt == typecode or (typecode == "q" and fmt == "l" and view.itemsize == 8) or \
        (typecode == "B" and fmt in ("b", "c"))
    if view.c_contiguous and same:
        if not view.readonly:
            return view
        # ctypes can address only writable buffers; the library only reads inputs, so a copy is fine.
        copy = array(typecode)
        copy.frombytes(view.cast("B"))
        return copy
    return array(typecode, _flatten(view.tolist()))


def _count(buf):
    """Number of items in a buffer from _as_array."""
    return len(buf) if isinstance(buf, array) else buf.nbytes // buf.itemsize


def _ptr(buf, ctype):
    """A ctypes pointer into a buffer from _as_array or a fresh array; the caller keeps `buf` alive for
    the duration of the C call."""
    if isinstance(buf, array):
        return ctypes.cast(buf.buffer_info()[0], POINTER(ctype))
    return ctypes.cast((ctype * 0).from_buffer(buf.cast("B")), POINTER(ctype))


def _rows(data, dim, what):
    """(array, n) for row-major float32 data of width `dim`."""
    x = _as_array(data, "f")
    length = _count(x)
    if dim <= 0 or length % dim:
        raise RateclustError(INVALID_ARGUMENT, "%s: %d floats is not a multiple of dim %d" % (what, length, dim))
    return x, length // dim


class _Progress:
    """Bridges a Python callable `progress(stage, done, total) -> bool-ish` (False cancels) to a C callback.
    An exception raised inside it cancels the C call and is re-raised once the library has returned."""

    def __init__(self, fn, c_type=PROGRESS_FN):
        self.fn, self.error = fn, None
        self.c_fn = c_type(self._call) if fn is not None else c_type()

    def _call(self, _user, stage, done, total):
        try:
            keep_going = self.fn(stage.decode("utf-8", "replace") if stage else "", done, total)
            return 1 if keep_going is False else 0
        except BaseException as e:  # noqa: B902 — must not unwind through C
            self.error = e
            return 1

    def finish(self, status):
        if self.error is not None:
            raise self.error
        _check(status)


def _read_string(call):
    buf = ctypes.create_string_buffer(256)
    needed = c_size_t(0)
    _check(call(buf, len(buf), byref(needed)))
    if needed.value > len(buf):
        buf = ctypes.create_string_buffer(needed.value)
        _check(call(buf, len(buf), byref(needed)))
    return buf.value.decode("utf-8", "replace")


# --- library-wide calls ----------------------------------------------------------------------------------

def version():
    return _lib.rateclust_version().decode()


def device_count():
    return _lib.rateclust_device_count()


def device_info(device="auto", ordinal=0):
    """Which device a call with `device` would use; with "auto" falling back to the CPU, says why."""
    return _read_string(lambda b, c, n: _lib.rateclust_device_info(_device(device), ordinal, b, c, n))


def _set_fields(p, fields):
    names = {f[0] for f in FitParams._fields_}
    for key, value in fields.items():
        key = "lambda_" if key == "lambda" else key
        if key not in names:
            raise TypeError("unknown fit parameter %r (known: %s)" % (key, ", ".join(sorted(names))))
        if key == "assign_rule" and isinstance(value, str):
            value = ASSIGN_RULES[value]
        setattr(p, key, value)


def fit_params(preset=None, **fields):
    """Fit parameters: the defaults (automatic, data-adaptive settings; 0 = automatic) or a named preset
    ("auto", "cifar10", "imagenet"), with `fields` overriding (e.g. k=10, steps=100, assign_rule="prototype_z")."""
    if preset is None:
        p = _lib.rateclust_fit_default_params()
    else:
        p = FitParams()
        _check(_lib.rateclust_fit_preset_params(preset.encode(), byref(p)))
    _set_fields(p, fields)
    return p


def metrics(pred, truth):
    """(accuracy, nmi, ari) of labelling `pred` against `truth` (sequences of ints, any label values)."""
    pred, truth = _as_array(pred, "q"), _as_array(truth, "q")
    if _count(pred) != _count(truth):
        raise RateclustError(INVALID_ARGUMENT, "metrics: pred has %d labels, truth %d" % (_count(pred), _count(truth)))
    acc, nmi, ari = c_double(), c_double(), c_double()
    _check(_lib.rateclust_metrics(_ptr(pred, c_int64), _ptr(truth, c_int64), _count(pred), byref(acc), byref(nmi),
                                  byref(ari)))
    return acc.value, nmi.value, ari.value


# --- clustering ------------------------------------------------------------------------------------------

class _Owned:
    """An object owning one library handle (`self._h`): freed by close(), at the end of a `with` block, or when
    the object is collected. Subclasses name what they hold (`_kind`) and how it is freed (`_free`)."""
    _kind = "handle"

    def _handle(self):
        if not self._h:
            raise RateclustError(INVALID_ARGUMENT, "the %s is closed" % self._kind)
        return self._h

    def _free(self, h):
        raise NotImplementedError

    def close(self):
        if self._h:
            self._free(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter shutdown the module's globals may already be gone
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Clusterer(_Owned):
    """A fitted clusterer. Use as a context manager or call close(); not safe from two threads at once."""
    _kind = "clusterer"

    def __init__(self, handle):
        self._h = handle

    @classmethod
    def fit(cls, x, dim, params=None, device="auto", progress=None, **fields):
        """Fits on row-major float32 `x` of width `dim`. `params` from fit_params(); `fields` override it."""
        p = FitParams.from_buffer_copy(params) if params is not None else fit_params()
        _set_fields(p, fields)
        x, n = _rows(x, dim, "fit: x")
        out = c_void_p()
        bridge = _Progress(progress)
        status = _lib.rateclust_fit(_ptr(x, c_float), n, dim, byref(p), _device(device), bridge.c_fn, None,
                                    byref(out))
        c = cls(out)  # owns the handle even if finish() raises
        bridge.finish(status)
        return c

    @classmethod
    def load(cls, path):
        out = c_void_p()
        _check(_lib.rateclust_clusterer_load(os.fsencode(path), byref(out)))
        return cls(out)


    def save(self, path):
        _check(_lib.rateclust_clusterer_save(self._handle(), os.fsencode(path)))

    @property
    def k(self):
        k = c_size_t()
        _check(_lib.rateclust_clusterer_info(self._handle(), byref(k), None))
        return k.value

    @property
    def dim(self):
        d = c_size_t()
        _check(_lib.rateclust_clusterer_info(self._handle(), None, byref(d)))
        return d.value

    def assign(self, x, dim=None, progress=None, device="auto"):
        """(labels, confidence): array('q') cluster ids and array('f') margins, one per row of `x`."""
        dim = self.dim if dim is None else dim
        x, n = _rows(x, dim, "assign: x")
        labels, confidence = array("q", bytes(8 * n)), array("f", bytes(4 * n))
        bridge = _Progress(progress)
        bridge.finish(_lib.rateclust_assign(self._handle(), _ptr(x, c_float), n, dim, _device(device), _ptr(labels, c_int64),
                                            _ptr(confidence, c_float), bridge.c_fn, None))
        return labels, confidence

    def select_k(self, x, candidates, device="auto"):
        """(curve, best_k): coding length L(k) per candidate (array('d')) and its minimiser."""
        dim = self.dim
        x, n = _rows(x, dim, "select_k: x")
        cand = (c_size_t * len(candidates))(*candidates)
        curve, best = array("d", bytes(8 * len(candidates))), c_size_t()
        _check(_lib.rateclust_select_k(self._handle(), _ptr(x, c_float), n, dim, cand, len(candidates),
                                       _device(device), _ptr(curve, c_double), byref(best)))
        return curve, best.value

    def set_k(self, x, k, device="auto"):
        dim = self.dim
        x, n = _rows(x, dim, "set_k: x")
        _check(_lib.rateclust_clusterer_set_k(self._handle(), _ptr(x, c_float), n, dim, k, _device(device)))

    def _free(self, h):
        _lib.rateclust_clusterer_free(h)


# --- CLIP embeddings -------------------------------------------------------------------------------------

class Model(_Owned):
    """A CLIP model directory (Hugging Face layout). Embed calls return (array('f'), rows, dim)."""
    _kind = "model"

    def __init__(self, path, device="auto"):
        self._h = c_void_p()
        _check(_lib.rateclust_model_load(os.fsencode(path), _device(device), byref(self._h)))


    @property
    def embed_dim(self):
        d = c_size_t()
        _check(_lib.rateclust_model_embed_dim(self._handle(), byref(d)))
        return d.value

    @property
    def image_size(self):
        s = c_size_t()
        _check(_lib.rateclust_model_image_size(self._handle(), byref(s)))
        return s.value

    def _embed(self, images, n, call, normalize, pooled, batch_size, progress):
        p = _lib.rateclust_embed_default_params()
        p.normalize, p.pooled = normalize, pooled
        if batch_size is not None:
            p.batch_size = batch_size
        bridge = _Progress(progress, EMBED_PROGRESS_FN)
        p.progress = bridge.c_fn
        dim = c_size_t()
        _check(_lib.rateclust_model_output_dim(self._handle(), images, byref(p), byref(dim)))
        out = array("f", bytes(4 * n * dim.value))
        bridge.finish(call(byref(p), _ptr(out, c_float), len(out)))
        return out, n, dim.value

    def embed_texts(self, texts, normalize=True, pooled=False, batch_size=None, progress=None):
        enc = (c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        return self._embed(False, len(texts), lambda p, o, L: _lib.rateclust_embed_texts(
            self._handle(), enc, len(texts), p, o, L), normalize, pooled, batch_size, progress)

    def embed_image_files(self, paths, normalize=True, pooled=False, batch_size=None, progress=None):
        enc = (c_char_p * len(paths))(*[os.fsencode(p) for p in paths])
        return self._embed(True, len(paths), lambda p, o, L: _lib.rateclust_embed_image_files(
            self._handle(), enc, len(paths), p, o, L), normalize, pooled, batch_size, progress)

    def embed_images_encoded(self, blobs, normalize=True, pooled=False, batch_size=None, progress=None):
        """`blobs`: encoded JPEG/PNG/WebP images as bytes-like objects."""
        keep = [_as_array(b, "B") for b in blobs]
        ptrs = (POINTER(c_uint8) * len(keep))(*[_ptr(b, c_uint8) for b in keep])
        sizes = (c_size_t * len(keep))(*[_count(b) for b in keep])
        return self._embed(True, len(keep), lambda p, o, L: _lib.rateclust_embed_images_encoded(
            self._handle(), ptrs, sizes, len(keep), p, o, L), normalize, pooled, batch_size, progress)

    def embed_frames(self, frames, normalize=True, pooled=False, batch_size=None, progress=None):
        """`frames`: (pixels, width, height, stride_bytes, format) tuples, format a PIXEL_FORMATS key or value."""
        keep = [_as_array(f[0], "B") for f in frames]
        arr = (Frame * len(frames))()
        for i, (f, px) in enumerate(zip(frames, keep)):
            fmt = PIXEL_FORMATS[f[4].lower()] if isinstance(f[4], str) else f[4]
            arr[i] = Frame(_ptr(px, c_uint8), f[1], f[2], f[3], fmt)
        return self._embed(True, len(frames), lambda p, o, L: _lib.rateclust_embed_frames(
            self._handle(), arr, len(frames), p, o, L), normalize, pooled, batch_size, progress)

    def _free(self, h):
        _lib.rateclust_model_free(h)


def label_clusters(image_emb, dim, labels, k, text_emb, logit_scale=None, top=None):
    """Names `k` clusters: for each, (index of the winning caption or -1 if empty, its mean vote share).
    `image_emb`/`text_emb` are row-major float32 embeddings of width `dim`; `labels` one id per image row."""
    img, n = _rows(image_emb, dim, "label_clusters: image_emb")
    txt, n_text = _rows(text_emb, dim, "label_clusters: text_emb")
    lab = _as_array(labels, "q")
    if _count(lab) != n:
        raise RateclustError(INVALID_ARGUMENT, "label_clusters: %d labels for %d image rows" % (_count(lab), n))
    params = _lib.rateclust_label_default_params()
    if logit_scale is not None:
        params.logit_scale = logit_scale
    if top is not None:
        params.top = top
    caption, score = array("q", bytes(8 * k)), array("f", bytes(4 * k))
    _check(_lib.rateclust_label_clusters(_ptr(img, c_float), n, dim, _ptr(lab, c_int64), k, _ptr(txt, c_float),
                                         n_text, byref(params), _ptr(caption, c_int64), _ptr(score, c_float)))
    return list(zip(caption, score))


def default_vocabulary():
    """The built-in candidate captions (ImageNet-1k class names)."""
    return [_read_string(lambda b, c, n, i=i: _lib.rateclust_default_vocabulary_name(i, b, c, n))
            for i in range(_lib.rateclust_default_vocabulary_size())]
