/* The C side of the assign-overhead benchmark (python/benchmarks/bench_stages.py): loads a clusterer, reads
 * n×dim raw float32 features, and prints the best of `reps` rateclust_assign wall times in seconds.
 *   cc -O2 -Iinclude python/benchmarks/assign_c.c -Ltarget/release -lrateclust -o assign_c
 *   ./assign_c model.safetensors x.f32 n dim reps */
#include <rateclust.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s model x.f32 n dim reps\n", argv[0]); return 2; }
    size_t n = strtoull(argv[3], NULL, 10), dim = strtoull(argv[4], NULL, 10);
    int reps = atoi(argv[5]);
    rateclust_clusterer *c = NULL;
    if (rateclust_clusterer_load(argv[1], &c) != RATECLUST_STATUS_OK) { fprintf(stderr, "%s\n", rateclust_last_error()); return 1; }
    float *x = malloc(n * dim * sizeof(float));
    int64_t *labels = malloc(n * sizeof(int64_t));
    float *conf = malloc(n * sizeof(float));
    FILE *f = fopen(argv[2], "rb");
    if (!f || fread(x, sizeof(float), n * dim, f) != n * dim) { fprintf(stderr, "cannot read %s\n", argv[2]); return 1; }
    fclose(f);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (rateclust_assign(c, x, n, dim, RATECLUST_DEVICE_KIND_CPU, labels, conf, NULL, NULL) != RATECLUST_STATUS_OK) {
            fprintf(stderr, "%s\n", rateclust_last_error());
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec);
        if (s < best) best = s;
    }
    printf("%.6f %lld\n", best, (long long)labels[n - 1]);
    rateclust_clusterer_free(c);
    return 0;
}
