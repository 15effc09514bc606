// Clustering from C++ through the header-only wrapper examples/cpp/rateclust.hpp: fit on a synthetic union of
// 4 random 3-dimensional subspaces of R^24 → assign → metrics → save → load → same labels → select k, one
// error caught as an exception, and (given a CLIP model directory) embedding texts and an image and naming
// the image's cluster.
//
// Build (repository root, after `cargo build --release`):
//   g++ -std=c++17 -Iinclude -Iexamples/cpp examples/cpp/cluster_demo.cpp -Ltarget/release -lrateclust -o demo
// Run:
//   LD_LIBRARY_PATH=target/release ./demo [WORK_DIR [CLIP_MODEL_DIR IMAGE]]
#include "rateclust.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

namespace {

constexpr size_t kN = 800, kDim = 24, kClusters = 4, kRank = 3;

// Points on subspace i % kClusters (orthonormal basis from Gram–Schmidt) plus a little isotropic noise.
void union_of_subspaces(std::vector<float>& x, std::vector<int64_t>& truth) {
    std::mt19937_64 gen(12345);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> basis(kClusters * kRank * kDim);
    auto b = [&](size_t j, size_t q) { return &basis[(j * kRank + q) * kDim]; };
    for (size_t j = 0; j < kClusters; j++)
        for (size_t q = 0; q < kRank; q++) {
            double* v = b(j, q);
            for (size_t t = 0; t < kDim; t++) v[t] = normal(gen);
            for (size_t p = 0; p < q; p++) {
                const double* u = b(j, p);
                double dot = 0;
                for (size_t t = 0; t < kDim; t++) dot += v[t] * u[t];
                for (size_t t = 0; t < kDim; t++) v[t] -= dot * u[t];
            }
            double norm = 0;
            for (size_t t = 0; t < kDim; t++) norm += v[t] * v[t];
            for (size_t t = 0; t < kDim; t++) v[t] /= std::sqrt(norm);
        }
    x.assign(kN * kDim, 0.0f);
    truth.assign(kN, 0);
    for (size_t i = 0; i < kN; i++) {
        size_t j = i % kClusters;
        truth[i] = static_cast<int64_t>(j);
        float* row = &x[i * kDim];
        for (size_t t = 0; t < kDim; t++) row[t] = static_cast<float>(0.02 * normal(gen));
        for (size_t q = 0; q < kRank; q++) {
            double a = normal(gen) / std::sqrt(double(kRank));
            for (size_t t = 0; t < kDim; t++) row[t] += static_cast<float>(a * b(j, q)[t]);
        }
    }
}

void embed_and_name(const std::string& model_dir, const std::string& image) {
    auto model = rateclust::Model::load(model_dir, rateclust::Device::Cpu);
    const std::vector<std::string> captions = {"a photo of a cat", "a photo of a dog", "a diagram"};
    rateclust::EmbedOptions opt;
    size_t batches = 0;
    opt.progress = [&](const std::string&, uint64_t, uint64_t) { return ++batches, true; };
    auto texts = model.embed_texts(captions, opt);
    auto images = model.embed_image_files({image, image});
    std::printf("embedded %zu texts and %zu images of dim %zu (%zu progress calls)\n", texts.rows, images.rows,
                images.dim, batches);
    for (size_t c = 0; c < texts.rows; c++) {
        double cos = 0;
        for (size_t t = 0; t < texts.dim; t++) cos += double(images.row(0)[t]) * texts.row(c)[t];
        std::printf("cos(image, \"%s\") = %.4f\n", captions[c].c_str(), cos);
    }
    // Raw frames as a media pipeline hands them over: one picture as RGB8 (rows padded) and as BGR8.
    const uint32_t w = 50, h = 40;
    const size_t stride = w * 3 + 7;
    std::vector<uint8_t> rgb(h * stride), bgr(h * stride);
    for (uint32_t yy = 0; yy < h; yy++)
        for (uint32_t xx = 0; xx < w; xx++) {
            uint8_t r = uint8_t(xx * 5), g = uint8_t(yy * 6), b = uint8_t(xx * yy);
            uint8_t *p = &rgb[yy * stride + 3 * xx], *q = &bgr[yy * stride + 3 * xx];
            p[0] = r, p[1] = g, p[2] = b, q[0] = b, q[1] = g, q[2] = r;
        }
    auto frames = model.embed_frames({{rgb.data(), w, h, stride, RATECLUST_PIXEL_FORMAT_RGB8},
                                      {bgr.data(), w, h, stride, RATECLUST_PIXEL_FORMAT_BGR8}});
    if (!std::equal(frames.row(0), frames.row(1), frames.row(1)))
        throw std::logic_error("RGB8 and BGR8 frames of one picture embed differently");
    std::printf("embedded %zu raw frames (RGB8 == BGR8)\n", frames.rows);

    auto names = rateclust::label_clusters(images, {0, 0}, 1, texts);
    std::printf("cluster 0 is named \"%s\" (vote share %.3f)\n", captions.at(size_t(names[0].caption)).c_str(),
                names[0].score);

    // An exception thrown in a progress callback cancels the call and reaches the caller unchanged.
    opt.progress = [](const std::string&, uint64_t, uint64_t) -> bool { throw std::runtime_error("stop here"); };
    try {
        model.embed_texts(captions, opt);
        throw std::logic_error("the throwing callback did not stop embed_texts");
    } catch (const std::runtime_error& e) {
        if (dynamic_cast<const rateclust::Error*>(&e)) throw;
        std::printf("callback exception propagated: %s\n", e.what());
    }
}

}  // namespace

int main(int argc, char** argv) try {
    const std::string dir = argc > 1 ? argv[1] : "/tmp";
    std::printf("rateclust %s; %s\n", rateclust::version().c_str(), rateclust::device_info().c_str());
    auto vocabulary = rateclust::default_vocabulary();
    std::printf("default vocabulary: %zu names, first '%s'\n", vocabulary.size(), vocabulary.at(0).c_str());

    std::vector<float> x;
    std::vector<int64_t> truth;
    union_of_subspaces(x, truth);

    // Small head and few steps: this toy problem needs nothing like the CIFAR-10 defaults.
    rateclust_fit_params p = rateclust::default_fit_params();
    p.k = kClusters;
    p.hidden = 96;
    p.zdim = 24;
    p.batch = 200;
    p.steps = 120;  // ~0.5 s on 2 cores; 32 steps leave some seeds at ~0.65 accuracy
    p.warmup = 8;
    p.lr = p.lr_cluster = 1e-3;
    p.spectral_sample = 400;

    size_t progress_calls = 0;
    auto clusterer = rateclust::Clusterer::fit(x, kDim, p, rateclust::Device::Cpu,
                                               [&](const std::string&, uint64_t, uint64_t) {
                                                   ++progress_calls;
                                                   return true;
                                               });
    std::printf("fitted: k = %zu, dim = %zu, progress calls: %zu\n", clusterer.k(), clusterer.dim(), progress_calls);

    auto assigned = clusterer.assign(x);
    auto m = rateclust::metrics(assigned.labels, truth);
    std::printf("metrics: acc %.4f nmi %.4f ari %.4f\n", m.accuracy, m.nmi, m.ari);

    const std::string path = dir + "/rateclust_cpp_demo.safetensors";
    clusterer.save(path);
    auto loaded = rateclust::Clusterer::load(path);
    std::remove(path.c_str());
    auto again = loaded.assign(x);
    if (again.labels != assigned.labels) throw std::logic_error("the loaded clusterer labels differently");
    std::printf("save/load: same labels for all %zu points\n", again.labels.size());

    auto sel = loaded.select_k(x, {2, 4, 6}, rateclust::Device::Cpu);
    std::printf("select-k: L(2) %.1f L(4) %.1f L(6) %.1f best %zu\n", sel.curve[0], sel.curve[1], sel.curve[2],
                sel.best_k);
    loaded.set_k(x, sel.best_k, rateclust::Device::Cpu);
    if (loaded.k() != sel.best_k) throw std::logic_error("set_k did not change the number of clusters");
    std::printf("set_k: now %zu clusters\n", loaded.k());

    // Errors are exceptions carrying the status and the library's message.
    try {
        std::vector<float> wrong(10 * (kDim + 1), 0.0f);
        clusterer.assign(wrong.data(), 10, kDim + 1);
        throw std::logic_error("assign with the wrong dimension did not fail");
    } catch (const rateclust::Error& e) {
        std::printf("expected error (status %d): %s\n", int(e.status()), e.what());
    }
    try {
        rateclust::Clusterer::load(dir + "/does-not-exist.safetensors");
        throw std::logic_error("loading a missing file did not fail");
    } catch (const rateclust::Error& e) {
        std::printf("expected error (status %d): %s\n", int(e.status()), e.what());
    }

    if (argc > 3) embed_and_name(argv[2], argv[3]);
    std::printf("ok\n");
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
}
