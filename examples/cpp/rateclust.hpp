// rateclust.hpp — a small header-only C++17 wrapper over the rateclust C API (include/rateclust.h).
//
// What it adds over the C header, and nothing more:
//   - every failed call throws rateclust::Error, carrying the status code and rateclust_last_error();
//   - handles (Clusterer, Model) own their C handle through std::unique_ptr, so they are freed exactly once;
//   - calls take and return std::vector (or pointer + length, so std::span / Eigen / raw buffers work too);
//   - progress callbacks are std::function; an exception thrown inside one cancels the C call and is
//     rethrown to the caller after the library has unwound (exceptions never cross the C boundary).
//
// Copy this file next to your sources. Build (from the repository root, after `cargo build --release`):
//   g++ -std=c++17 -Iinclude -Iexamples/cpp my.cpp -Ltarget/release -lrateclust -o my
// or link statically with target/release/librateclust.a -lpthread -ldl -lm.
#pragma once

#include <rateclust.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace rateclust {

/// A failed rateclust call: `status()` is the C status code, `what()` the library's message.
class Error : public std::runtime_error {
public:
    Error(rateclust_status status, const std::string& message)
        : std::runtime_error(message), status_(status) {}
    rateclust_status status() const noexcept { return status_; }

private:
    rateclust_status status_;
};

/// Throws Error if `status` is not OK, with the calling thread's last error message.
inline void check(rateclust_status status) {
    if (status != RATECLUST_STATUS_OK) {
        const char* msg = rateclust_last_error();
        throw Error(status, msg ? msg : "");
    }
}

/// The device a call runs on; the values are the C header's `rateclust_device_kind`.
enum class Device : uint32_t {
    Auto = RATECLUST_DEVICE_KIND_AUTO,
    Cpu = RATECLUST_DEVICE_KIND_CPU,
    Cuda = RATECLUST_DEVICE_KIND_CUDA,
};

/// Progress callback: gets the stage name and `done` of `total`; return false to cancel the call
/// (which then throws Error with RATECLUST_STATUS_CANCELLED).
using Progress = std::function<bool(const std::string& stage, uint64_t done, uint64_t total)>;

namespace detail {
// Carries a std::function through the C `user_data` pointer and stores any exception it throws, because an
// exception must not unwind through the library's C frames.
struct ProgressBridge {
    const Progress* fn;
    std::exception_ptr error;

    static int call(void* user_data, const char* stage, uint64_t done, uint64_t total) noexcept {
        auto* self = static_cast<ProgressBridge*>(user_data);
        try {
            return (*self->fn)(stage ? stage : "", done, total) ? 0 : 1;
        } catch (...) {
            self->error = std::current_exception();
            return 1;  // cancel; the exception is rethrown once the C call returns
        }
    }
    rateclust_progress_fn c_fn() const { return fn && *fn ? &ProgressBridge::call : nullptr; }
    void* c_data() { return fn && *fn ? this : nullptr; }
    // Rethrows the callback's exception (it takes precedence over the CANCELLED status it caused).
    void finish(rateclust_status status) {
        if (error) std::rethrow_exception(error);
        check(status);
    }
};

inline void check_rows(size_t len, size_t dim, const char* what) {
    if (dim == 0 || len % dim != 0)
        throw Error(RATECLUST_STATUS_INVALID_ARGUMENT,
                    std::string(what) + ": length " + std::to_string(len) + " is not a multiple of dim " +
                        std::to_string(dim));
}

// Reads a string the C API writes into a caller buffer with a `needed` size out-parameter.
template <class F>
std::string read_string(F&& f) {
    std::string buf(256, '\0');
    size_t needed = 0;
    check(f(buf.data(), buf.size(), &needed));
    if (needed > buf.size()) {
        buf.assign(needed, '\0');
        check(f(buf.data(), buf.size(), &needed));
    }
    buf.resize(needed > 0 ? needed - 1 : 0);  // `needed` counts the NUL
    return buf;
}
}  // namespace detail

inline std::string version() { return rateclust_version(); }
inline uint32_t device_count() { return rateclust_device_count(); }

/// Describes the device `kind` would use (with Auto falling back to the CPU, says why).
inline std::string device_info(Device kind = Device::Auto, uint32_t ordinal = 0) {
    return detail::read_string([&](char* buf, size_t cap, size_t* needed) {
        return rateclust_device_info(static_cast<uint32_t>(kind), ordinal, buf, cap, needed);
    });
}

/// The default fit parameters (reference CPP CIFAR-10 settings) — change fields, then pass to Clusterer::fit.
inline rateclust_fit_params default_fit_params() { return rateclust_fit_default_params(); }

/// A named preset ("cifar10", "imagenet", "fmnist-effnet").
inline rateclust_fit_params preset_fit_params(const std::string& name) {
    rateclust_fit_params p{};
    check(rateclust_fit_preset_params(name.c_str(), &p));
    return p;
}

/// Clustering scores of a labelling against ground truth.
struct Metrics {
    double accuracy, nmi, ari;
};

inline Metrics metrics(const int64_t* pred, const int64_t* truth, size_t n) {
    Metrics m{};
    check(rateclust_metrics(pred, truth, n, &m.accuracy, &m.nmi, &m.ari));
    return m;
}

inline Metrics metrics(const std::vector<int64_t>& pred, const std::vector<int64_t>& truth) {
    if (pred.size() != truth.size())
        throw Error(RATECLUST_STATUS_INVALID_ARGUMENT, "metrics: pred and truth differ in length");
    return metrics(pred.data(), truth.data(), pred.size());
}

/// Labels of `assign`, and the per-point confidence (best minus second-best cluster score).
struct Assignment {
    std::vector<int64_t> labels;
    std::vector<float> confidence;
};

/// The coding-length curve L(k) over the candidates, and its minimiser.
struct KSelection {
    std::vector<double> curve;
    size_t best_k;
};

/// A fitted clusterer. Move-only; freed when it goes out of scope. Not safe to use from two threads at once.
class Clusterer {
public:
    /// Fits on `n` rows of `dim` floats (row-major). `x` is only read during the call.
    static Clusterer fit(const float* x, size_t n, size_t dim, const rateclust_fit_params& params,
                         Device device = Device::Auto, const Progress& progress = {}) {
        detail::ProgressBridge bridge{&progress, nullptr};
        rateclust_clusterer* out = nullptr;
        rateclust_status st = rateclust_fit(x, n, dim, &params, static_cast<uint32_t>(device), bridge.c_fn(),
                                            bridge.c_data(), &out);
        Clusterer c(out);  // owns `out` even if finish() throws
        bridge.finish(st);
        return c;
    }
    static Clusterer fit(const std::vector<float>& x, size_t dim, const rateclust_fit_params& params,
                         Device device = Device::Auto, const Progress& progress = {}) {
        detail::check_rows(x.size(), dim, "fit: x");
        return fit(x.data(), x.size() / dim, dim, params, device, progress);
    }

    /// Loads a file written by save(). Throws Error with RATECLUST_STATUS_IO / FORMAT if missing / corrupted.
    static Clusterer load(const std::string& path) {
        rateclust_clusterer* out = nullptr;
        check(rateclust_clusterer_load(path.c_str(), &out));
        return Clusterer(out);
    }

    void save(const std::string& path) const { check(rateclust_clusterer_save(get(), path.c_str())); }

    size_t k() const {
        size_t k = 0;
        check(rateclust_clusterer_info(get(), &k, nullptr));
        return k;
    }
    size_t dim() const {
        size_t dim = 0;
        check(rateclust_clusterer_info(get(), nullptr, &dim));
        return dim;
    }

    /// Labels `n` rows of `dim()` floats.
    Assignment assign(const float* x, size_t n, size_t dim, Device device = Device::Auto,
                      const Progress& progress = {}) const {
        Assignment a{std::vector<int64_t>(n), std::vector<float>(n)};
        detail::ProgressBridge bridge{&progress, nullptr};
        bridge.finish(rateclust_assign(get(), x, n, dim, static_cast<uint32_t>(device), a.labels.data(),
                                       a.confidence.data(), bridge.c_fn(), bridge.c_data()));
        return a;
    }
    Assignment assign(const std::vector<float>& x, Device device = Device::Auto, const Progress& progress = {}) const {
        size_t d = dim();
        detail::check_rows(x.size(), d, "assign: x");
        return assign(x.data(), x.size() / d, d, device, progress);
    }

    /// Coding length L(k) for each candidate number of clusters, without retraining.
    KSelection select_k(const std::vector<float>& x, const std::vector<size_t>& candidates,
                        Device device = Device::Auto) const {
        size_t d = dim();
        detail::check_rows(x.size(), d, "select_k: x");
        KSelection s{std::vector<double>(candidates.size()), 0};
        check(rateclust_select_k(get(), x.data(), x.size() / d, d, candidates.data(), candidates.size(),
                                 static_cast<uint32_t>(device), s.curve.data(), &s.best_k));
        return s;
    }

    /// Re-derives the clusters for `k` clusters from `x` without retraining the head.
    void set_k(const std::vector<float>& x, size_t k, Device device = Device::Auto) {
        size_t d = dim();
        detail::check_rows(x.size(), d, "set_k: x");
        check(rateclust_clusterer_set_k(get(), x.data(), x.size() / d, d, k, static_cast<uint32_t>(device)));
    }

    /// The C handle, for calls this wrapper does not cover (still owned by this object).
    rateclust_clusterer* get() const {
        if (!handle_) throw Error(RATECLUST_STATUS_INVALID_ARGUMENT, "use of a moved-from rateclust::Clusterer");
        return handle_.get();
    }

private:
    struct Free {
        void operator()(rateclust_clusterer* c) const noexcept { rateclust_clusterer_free(c); }
    };
    explicit Clusterer(rateclust_clusterer* c) : handle_(c) {}
    std::unique_ptr<rateclust_clusterer, Free> handle_;
};

/// Embeddings: `rows` rows of `dim` floats, row-major.
struct Embeddings {
    std::vector<float> data;
    size_t rows = 0, dim = 0;
    const float* row(size_t i) const { return data.data() + i * dim; }
};

/// Options of the embed calls (normalised projected embeddings, batches of 32, by default).
struct EmbedOptions {
    bool normalize = true;
    bool pooled = false;
    uint32_t batch_size = 32;
    /// Largest decoded image or frame in pixels; 0 = the library's default (Pillow's bomb limit).
    uint64_t max_image_pixels = 0;
    std::function<bool(const std::string& stage, uint64_t done, uint64_t total)> progress;
};

/// A loaded CLIP model (a Hugging Face CLIP directory). Immutable: several threads may embed at once.
class Model {
public:
    static Model load(const std::string& dir, Device device = Device::Auto) {
        rateclust_model* out = nullptr;
        check(rateclust_model_load(dir.c_str(), static_cast<uint32_t>(device), &out));
        return Model(out);
    }

    size_t embed_dim() const {
        size_t d = 0;
        check(rateclust_model_embed_dim(get(), &d));
        return d;
    }
    size_t image_size() const {
        size_t s = 0;
        check(rateclust_model_image_size(get(), &s));
        return s;
    }

    Embeddings embed_texts(const std::vector<std::string>& texts, const EmbedOptions& opt = {}) const {
        std::vector<const char*> ptrs;
        for (const auto& t : texts) ptrs.push_back(t.c_str());
        return run(false, texts.size(), opt, [&](const rateclust_embed_params* p, float* out, size_t len) {
            return rateclust_embed_texts(get(), ptrs.data(), ptrs.size(), p, out, len);
        });
    }

    Embeddings embed_image_files(const std::vector<std::string>& paths, const EmbedOptions& opt = {}) const {
        std::vector<const char*> ptrs;
        for (const auto& t : paths) ptrs.push_back(t.c_str());
        return run(true, paths.size(), opt, [&](const rateclust_embed_params* p, float* out, size_t len) {
            return rateclust_embed_image_files(get(), ptrs.data(), ptrs.size(), p, out, len);
        });
    }

    /// Encoded images (JPEG, PNG, WebP) held in memory.
    Embeddings embed_images_encoded(const std::vector<std::vector<uint8_t>>& images,
                                    const EmbedOptions& opt = {}) const {
        std::vector<const uint8_t*> ptrs;
        std::vector<size_t> sizes;
        for (const auto& b : images) ptrs.push_back(b.data()), sizes.push_back(b.size());
        return run(true, images.size(), opt, [&](const rateclust_embed_params* p, float* out, size_t len) {
            return rateclust_embed_images_encoded(get(), ptrs.data(), sizes.data(), ptrs.size(), p, out, len);
        });
    }

    /// Raw frames (see rateclust_frame: data, width, height, stride_bytes, a RATECLUST_PIXEL_FORMAT_* value).
    Embeddings embed_frames(const std::vector<rateclust_frame>& frames, const EmbedOptions& opt = {}) const {
        return run(true, frames.size(), opt, [&](const rateclust_embed_params* p, float* out, size_t len) {
            return rateclust_embed_frames(get(), frames.data(), frames.size(), p, out, len);
        });
    }

    rateclust_model* get() const {
        if (!handle_) throw Error(RATECLUST_STATUS_INVALID_ARGUMENT, "use of a moved-from rateclust::Model");
        return handle_.get();
    }

private:
    struct Free {
        void operator()(rateclust_model* m) const noexcept { rateclust_model_free(m); }
    };
    explicit Model(rateclust_model* m) : handle_(m) {}

    template <class Call>
    Embeddings run(bool images, size_t n, const EmbedOptions& opt, Call&& call) const {
        rateclust_embed_params p = rateclust_embed_default_params();
        p.normalize = opt.normalize;
        p.pooled = opt.pooled;
        p.batch_size = opt.batch_size;
        if (opt.max_image_pixels != 0) p.max_image_pixels = opt.max_image_pixels;
        // The embed callback has the same shape as rateclust_progress_fn, with an int32_t result.
        detail::ProgressBridge bridge{&opt.progress, nullptr};
        if (opt.progress) {
            p.progress = [](void* u, const char* s, uint64_t d, uint64_t t) -> int32_t {
                return detail::ProgressBridge::call(u, s, d, t);
            };
            p.progress_user_data = &bridge;
        }
        Embeddings e;
        e.rows = n;
        check(rateclust_model_output_dim(get(), images, &p, &e.dim));
        e.data.resize(n * e.dim);
        bridge.finish(call(&p, e.data.data(), e.data.size()));
        return e;
    }

    std::unique_ptr<rateclust_model, Free> handle_;
};

/// The name chosen for one cluster: index into the captions (-1 for an empty cluster) and its vote share.
struct ClusterName {
    int64_t caption;
    float score;
};

/// Names `k` clusters by CLIP vote: `images` are the points' embeddings, `texts` the candidate captions'.
inline std::vector<ClusterName> label_clusters(const Embeddings& images, const std::vector<int64_t>& labels,
                                               size_t k, const Embeddings& texts,
                                               const rateclust_label_params* params = nullptr) {
    if (labels.size() != images.rows)
        throw Error(RATECLUST_STATUS_INVALID_ARGUMENT, "label_clusters: labels and image rows differ in count");
    std::vector<int64_t> caption(k);
    std::vector<float> score(k);
    check(rateclust_label_clusters(images.data.data(), images.rows, images.dim, labels.data(), k, texts.data.data(),
                                   texts.rows, params, caption.data(), score.data()));
    std::vector<ClusterName> out(k);
    for (size_t j = 0; j < k; j++) out[j] = {caption[j], score[j]};
    return out;
}

/// The built-in candidate vocabulary (ImageNet-1k class names).
inline std::vector<std::string> default_vocabulary() {
    std::vector<std::string> names(rateclust_default_vocabulary_size());
    for (size_t i = 0; i < names.size(); i++)
        names[i] = detail::read_string([&](char* buf, size_t cap, size_t* needed) {
            return rateclust_default_vocabulary_name(i, buf, cap, needed);
        });
    return names;
}

}  // namespace rateclust
