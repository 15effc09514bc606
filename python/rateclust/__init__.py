"""rateclust — image clustering by rate reduction (CPP) on CLIP features, from Python with NumPy.

The package sits on the library's stable C ABI (``include/rateclust.h``) through ctypes: it loads the
``librateclust.so`` shipped inside it (or ``$RATECLUST_LIB``). Arrays go in and out as NumPy arrays; a
C-contiguous float32 array is passed to the library by pointer (no copy), anything else is converted first.
Every failed call raises :class:`RateclustError` with the C status (``status``, ``status_name``) and the
library's message. The GIL is released while the library computes.

    import numpy as np, rateclust
    x = np.load("features.npy")                        # n × dim float32
    with rateclust.Clusterer.fit(x, k=10, seed=7) as c:
        labels, confidence = c.assign(x)
        c.save("clusterer.safetensors")
    with rateclust.Model("clip-vit-base-patch32") as clip:
        emb = clip.embed_image_files(["a.jpg", "b.png"])

``python -m rateclust.ray_pipeline --help`` runs the whole job on a Ray cluster (docs/python.md).
"""

from ._core import (ASSIGN_RULES, PIXEL_FORMATS, SAMPLE_CLUSTERINGS, ClusterName, Clusterer, FitParams, Metrics,
                    Model, RateclustError, Status, abi_version, as_rows, cpu_threads, default_vocabulary,
                    device_count, device_info, label_clusters, metrics, name_clusters, set_cpu_threads, set_gpu,
                    version, write_report)
from ._native import library_path

__version__ = "0.1.0"

__all__ = [
    "ASSIGN_RULES", "PIXEL_FORMATS", "SAMPLE_CLUSTERINGS", "ClusterName", "Clusterer", "FitParams", "Metrics",
    "Model", "RateclustError", "Status", "abi_version", "as_rows", "cpu_threads", "default_vocabulary",
    "device_count", "device_info", "label_clusters", "library_path", "metrics", "name_clusters",
    "set_cpu_threads", "set_gpu", "version", "write_report",
]
