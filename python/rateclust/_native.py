"""ctypes declarations of include/rateclust.h (private): the library handle `lib` and the C structures.

Every structure here mirrors the header field for field; tests/bindings_python.rs compares their layouts with
Rust's `#[repr(C)]` ones, so a change in the ABI fails there instead of corrupting memory here.

ctypes releases the GIL around every foreign call (``ctypes.CDLL``, not ``PyDLL``), so long calls (fit, assign,
embed) let other Python threads run; progress callbacks take the GIL back only while they run.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (POINTER, Structure, c_bool, c_char_p, c_double, c_float, c_int, c_int32, c_int64, c_size_t,
                    c_uint8, c_uint32, c_uint64, c_void_p)

#: RATECLUST_ABI_VERSION of the header these declarations mirror.
ABI_VERSION = 2

PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_char_p, c_uint64, c_uint64)


class FitParamsC(Structure):
    """rateclust_fit_params."""
    _fields_ = [
        ("k", c_size_t), ("k_max", c_size_t), ("hidden", c_size_t), ("zdim", c_size_t), ("eta", c_double),
        ("eps_sq", c_double), ("gamma", c_double), ("lambda_", c_double), ("sinkhorn_half_iters", c_size_t),
        ("exact_sinkhorn_gradient", c_bool), ("batch", c_size_t), ("steps", c_size_t), ("warmup", c_size_t),
        ("head_restarts", c_size_t),
        ("lr", c_double), ("lr_cluster", c_double), ("momentum", c_double), ("weight_decay", c_double),
        ("weight_decay_cluster", c_double), ("seed", c_uint64), ("single_head", c_bool),
        ("normalize_input", c_bool), ("spectral_sample", c_size_t), ("kmeans_restarts", c_size_t),
        ("assign_rule", c_uint32), ("subspace_rank", c_size_t), ("sample_clustering", c_uint32),
        ("kmeans_candidates", c_size_t),
    ]


class EmbedParamsC(Structure):
    """rateclust_embed_params."""
    _fields_ = [("normalize", c_bool), ("pooled", c_bool), ("batch_size", c_uint32),
                ("progress", PROGRESS_FN), ("progress_user_data", c_void_p), ("max_image_pixels", c_uint64)]


class FrameC(Structure):
    """rateclust_frame."""
    _fields_ = [("data", POINTER(c_uint8)), ("width", c_uint32), ("height", c_uint32),
                ("stride_bytes", c_size_t), ("format", c_uint32)]


class LabelParamsC(Structure):
    """rateclust_label_params."""
    _fields_ = [("logit_scale", c_float), ("top", c_uint32)]


def library_path() -> str:
    """Where the shared library is loaded from: $RATECLUST_LIB, else the copy shipped inside this package,
    else the system loader's search path."""
    env = os.environ.get("RATECLUST_LIB")
    if env:
        return env
    name = {"darwin": "librateclust.dylib", "win32": "rateclust.dll"}.get(sys.platform, "librateclust.so")
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    return here if os.path.exists(here) else name


lib = ctypes.CDLL(library_path())
_P = POINTER
_f32, _f64, _i64, _sz, _u8 = _P(c_float), _P(c_double), _P(c_int64), _P(c_size_t), _P(c_uint8)
_SIGNATURES = {
    "rateclust_last_error": (c_char_p, []),
    "rateclust_version": (c_char_p, []),
    "rateclust_status_name": (c_char_p, [c_int32]),
    "rateclust_abi_version": (c_uint32, []),
    "rateclust_device_count": (c_uint32, []),
    "rateclust_device_info": (c_int, [c_uint32, c_uint32, c_char_p, c_size_t, _sz]),
    "rateclust_cpu_threads": (c_int, [_P(c_uint32)]),
    "rateclust_set_cpu_threads": (c_int, [c_uint32]),
    "rateclust_fit_default_params": (FitParamsC, []),
    "rateclust_fit_preset_params": (c_int, [c_char_p, _P(FitParamsC)]),
    "rateclust_fit": (c_int, [c_void_p, c_size_t, c_size_t, _P(FitParamsC), c_uint32, PROGRESS_FN, c_void_p,
                              _P(c_void_p)]),
    "rateclust_clusterer_free": (None, [c_void_p]),
    "rateclust_clusterer_info": (c_int, [c_void_p, _sz, _sz]),
    "rateclust_assign": (c_int, [c_void_p, c_void_p, c_size_t, c_size_t, c_uint32, c_void_p, c_void_p,
                                 PROGRESS_FN, c_void_p]),
    "rateclust_assign_scores": (c_int, [c_void_p, c_void_p, c_size_t, c_size_t, c_void_p, c_size_t, PROGRESS_FN,
                                        c_void_p]),
    "rateclust_set_gpu": (c_int, [c_uint32]),
    "rateclust_select_k": (c_int, [c_void_p, c_void_p, c_size_t, c_size_t, _sz, c_size_t, c_uint32, c_void_p, _sz]),
    "rateclust_clusterer_set_k": (c_int, [c_void_p, c_void_p, c_size_t, c_size_t, c_size_t, c_uint32]),
    "rateclust_metrics": (c_int, [c_void_p, c_void_p, c_size_t, _f64, _f64, _f64]),
    "rateclust_clusterer_save": (c_int, [c_void_p, c_char_p]),
    "rateclust_clusterer_load": (c_int, [c_char_p, _P(c_void_p)]),
    "rateclust_embed_default_params": (EmbedParamsC, []),
    "rateclust_model_load": (c_int, [c_char_p, c_uint32, _P(c_void_p)]),
    "rateclust_model_load_precision": (c_int, [c_char_p, c_uint32, c_uint32, c_uint32, _P(c_void_p)]),
    "rateclust_model_free": (None, [c_void_p]),
    "rateclust_model_embed_dim": (c_int, [c_void_p, _sz]),
    "rateclust_model_output_dim": (c_int, [c_void_p, c_bool, _P(EmbedParamsC), _sz]),
    "rateclust_model_image_size": (c_int, [c_void_p, _sz]),
    "rateclust_embed_image_files": (c_int, [c_void_p, _P(c_char_p), c_size_t, _P(EmbedParamsC), c_void_p, c_size_t]),
    "rateclust_embed_images_encoded": (c_int, [c_void_p, _P(_u8), _sz, c_size_t, _P(EmbedParamsC), c_void_p,
                                               c_size_t]),
    "rateclust_embed_frames": (c_int, [c_void_p, _P(FrameC), c_size_t, _P(EmbedParamsC), c_void_p, c_size_t]),
    "rateclust_embed_pixels": (c_int, [c_void_p, c_void_p, c_size_t, _P(EmbedParamsC), c_void_p, c_size_t]),
    "rateclust_embed_texts": (c_int, [c_void_p, _P(c_char_p), c_size_t, _P(EmbedParamsC), c_void_p, c_size_t]),
    "rateclust_label_default_params": (LabelParamsC, []),
    "rateclust_label_clusters": (c_int, [c_void_p, c_size_t, c_size_t, c_void_p, c_size_t, c_void_p, c_size_t,
                                         _P(LabelParamsC), c_void_p, c_void_p]),
    "rateclust_default_vocabulary_size": (c_size_t, []),
    "rateclust_default_vocabulary_name": (c_int, [c_size_t, c_char_p, c_size_t, _sz]),
    "rateclust_write_report": (c_int, [c_char_p, c_char_p]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype, _fn.argtypes = _res, _args

if lib.rateclust_abi_version() != ABI_VERSION:
    raise ImportError("rateclust: the library at %s has ABI version %d, this package was written for %d"
                      % (library_path(), lib.rateclust_abi_version(), ABI_VERSION))
