/* Clustering feature vectors from C: fit → assign → save → load → assign (same labels) → metrics → select k,
 * plus the error paths (NaN input, wrong dimension, corrupted model file, cancellation). The features are a
 * synthetic union of 4 random 3-dimensional subspaces of R^24 generated here. Build:
 *   cc -Iinclude examples/c/cluster.c -Ltarget/release -lrateclust -lm -o cluster
 * Run: ./cluster [WORK_DIR]   (model files are written there; default /tmp) */
#include <rateclust.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 800, DIM = 24, K = 4, RANK = 3 };

static uint64_t rng_state = 12345;
static double uniform01(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double normal01(void) {
    double u1 = 1.0 - uniform01(), u2 = uniform01();
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static int progress_calls = 0;
static int count_progress(void* user_data, const char* stage, uint64_t done, uint64_t total) {
    (void)user_data; (void)stage; (void)done; (void)total;
    progress_calls++;
    return 0;
}
static int cancel_at_once(void* user_data, const char* stage, uint64_t done, uint64_t total) {
    (void)stage; (void)done; (void)total;
    ++*(int*)user_data;
    return 1;
}

#define CHECK(call)                                                                       \
    do {                                                                                  \
        rateclust_status st_ = (call);                                                    \
        if (st_ != RATECLUST_STATUS_OK) {                                                 \
            fprintf(stderr, "%s failed (%d): %s\n", #call, (int)st_, rateclust_last_error()); \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)

#define EXPECT_STATUS(call, want)                                                         \
    do {                                                                                  \
        rateclust_status st_ = (call);                                                    \
        if (st_ != (want)) {                                                              \
            fprintf(stderr, "%s: expected status %d, got %d (%s)\n", #call, (int)(want), (int)st_, rateclust_last_error()); \
            return 1;                                                                     \
        }                                                                                 \
        printf("expected error: %s\n", rateclust_last_error());                           \
    } while (0)

int main(int argc, char** argv) {
    const char* dir = argc > 1 ? argv[1] : "/tmp";
    static float x[N * DIM];
    static int64_t truth[N], labels[N], labels2[N];
    static float confidence[N];
    static double basis[K][RANK][DIM];

    /* Orthonormal bases (Gram–Schmidt), then points on subspace i % K with a little noise. */
    for (int j = 0; j < K; j++)
        for (int q = 0; q < RANK; q++) {
            for (int t = 0; t < DIM; t++) basis[j][q][t] = normal01();
            for (int p = 0; p < q; p++) {
                double dot = 0;
                for (int t = 0; t < DIM; t++) dot += basis[j][q][t] * basis[j][p][t];
                for (int t = 0; t < DIM; t++) basis[j][q][t] -= dot * basis[j][p][t];
            }
            double nrm = 0;
            for (int t = 0; t < DIM; t++) nrm += basis[j][q][t] * basis[j][q][t];
            for (int t = 0; t < DIM; t++) basis[j][q][t] /= sqrt(nrm);
        }
    for (int i = 0; i < N; i++) {
        int j = i % K;
        truth[i] = j;
        for (int t = 0; t < DIM; t++) x[i * DIM + t] = (float)(0.02 * normal01());
        for (int q = 0; q < RANK; q++) {
            double a = normal01() / sqrt((double)RANK);
            for (int t = 0; t < DIM; t++) x[i * DIM + t] += (float)(a * basis[j][q][t]);
        }
    }

    rateclust_fit_params p = rateclust_fit_default_params();
    /* The defaults are automatic (0 = derived from the data at fit time). */
    if (p.k != 0 || p.hidden != 0 || p.steps != 0 || !p.normalize_input) {
        fprintf(stderr, "unexpected defaults\n");
        return 1;
    }
    p.k = K;
    p.hidden = 96;
    p.zdim = 24;
    p.batch = 200;
    p.steps = 64;
    p.warmup = 8;
    p.lr = p.lr_cluster = 1e-3;
    p.spectral_sample = 400;

    rateclust_clusterer* model = NULL;
    CHECK(rateclust_fit(x, N, DIM, &p, RATECLUST_DEVICE_KIND_CPU, count_progress, NULL, &model));
    size_t k = 0, dim = 0;
    CHECK(rateclust_clusterer_info(model, &k, &dim));
    printf("fitted: k = %zu, dim = %zu, progress callbacks: %d\n", k, dim, progress_calls);
    if (k != K || dim != DIM || progress_calls == 0) return 1;

    CHECK(rateclust_assign(model, x, N, DIM, RATECLUST_DEVICE_KIND_CPU, labels, confidence, NULL, NULL));
    double acc = 0, nmi = 0, ari = 0;
    CHECK(rateclust_metrics(labels, truth, N, &acc, &nmi, &ari));
    printf("metrics: acc %.4f nmi %.4f ari %.4f\n", acc, nmi, ari);
    if (acc < 0.95) return 1;

    char path[1024];
    snprintf(path, sizeof path, "%s/rateclust_c_example.safetensors", dir);
    CHECK(rateclust_clusterer_save(model, path));
    rateclust_clusterer* loaded = NULL;
    CHECK(rateclust_clusterer_load(path, &loaded));
    CHECK(rateclust_assign(loaded, x, N, DIM, RATECLUST_DEVICE_KIND_CPU, labels2, NULL, NULL, NULL));
    for (int i = 0; i < N; i++)
        if (labels[i] != labels2[i]) {
            fprintf(stderr, "loaded model labels point %d differently\n", i);
            return 1;
        }
    printf("save/load: same labels for all %d points\n", N);

    size_t candidates[] = {2, 4, 6};
    double curve[3];
    size_t best = 0;
    CHECK(rateclust_select_k(loaded, x, N, DIM, candidates, 3, RATECLUST_DEVICE_KIND_CPU, curve, &best));
    printf("select-k: L(2) %.1f L(4) %.1f L(6) %.1f best %zu\n", curve[0], curve[1], curve[2], best);
    CHECK(rateclust_clusterer_set_k(loaded, x, N, DIM, best, RATECLUST_DEVICE_KIND_CPU));
    CHECK(rateclust_clusterer_info(loaded, &k, NULL));
    if (k != best) return 1;
    printf("set_k: now %zu clusters\n", k);

    /* Error paths: each a status and a message, never a crash. */
    x[5] = NAN;
    rateclust_clusterer* bad = NULL;
    EXPECT_STATUS(rateclust_fit(x, N, DIM, &p, RATECLUST_DEVICE_KIND_CPU, NULL, NULL, &bad), RATECLUST_STATUS_NON_FINITE);
    x[5] = 0.0f;
    EXPECT_STATUS(rateclust_assign(model, x, N / 2, DIM * 2, RATECLUST_DEVICE_KIND_CPU, labels, NULL, NULL, NULL), RATECLUST_STATUS_INVALID_ARGUMENT);
    rateclust_fit_params p1 = p;
    p1.k = 1;
    EXPECT_STATUS(rateclust_fit(x, N, DIM, &p1, RATECLUST_DEVICE_KIND_CPU, NULL, NULL, &bad), RATECLUST_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rateclust_fit(x, 3, DIM, &p, RATECLUST_DEVICE_KIND_CPU, NULL, NULL, &bad), RATECLUST_STATUS_INVALID_ARGUMENT);
    int cancels = 0;
    EXPECT_STATUS(rateclust_fit(x, N, DIM, &p, RATECLUST_DEVICE_KIND_CPU, cancel_at_once, &cancels, &bad), RATECLUST_STATUS_CANCELLED);
    if (cancels != 1 || bad != NULL) return 1;
    FILE* f = fopen(path, "r+b");
    if (!f) return 1;
    fwrite("garbage!", 1, 8, f); /* overwrite the header length */
    fclose(f);
    EXPECT_STATUS(rateclust_clusterer_load(path, &bad), RATECLUST_STATUS_FORMAT);
    EXPECT_STATUS(rateclust_assign(NULL, x, N, DIM, RATECLUST_DEVICE_KIND_CPU, labels, NULL, NULL, NULL), RATECLUST_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rateclust_assign(model, x, N, DIM, 99u, labels, NULL, NULL, NULL), RATECLUST_STATUS_INVALID_ARGUMENT);
    remove(path);

    rateclust_clusterer_free(loaded);
    rateclust_clusterer_free(model);
    rateclust_clusterer_free(NULL);
    printf("ok\n");
    return 0;
}
