/* Names clusters from embeddings through the C API: two clusters whose images lie near caption 1 and
 * caption 2 of three captions must be named 1 and 2. Also reads the default vocabulary. */
#include <rateclust.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    enum { N = 6, DIM = 3, K = 2, NTEXT = 3 };
    const float text[NTEXT * DIM] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const float image[N * DIM] = {0.1f, 1, 0, 0, 0.9f, 0.1f, 0.2f, 1, 0.1f, 0, 0.1f, 1, 0.1f, 0, 0.8f, 0, 0.2f, 1};
    const int64_t labels[N] = {0, 0, 0, 1, 1, 1};
    int64_t caption[K];
    float score[K];
    rateclust_label_params params = rateclust_label_default_params();
    if (rateclust_label_clusters(image, N, DIM, labels, K, text, NTEXT, &params, caption, score) != RATECLUST_STATUS_OK) {
        fprintf(stderr, "label_clusters: %s\n", rateclust_last_error());
        return 1;
    }
    printf("cluster 0 -> caption %lld (%.3f), cluster 1 -> caption %lld (%.3f)\n", (long long)caption[0], score[0],
           (long long)caption[1], score[1]);
    if (caption[0] != 1 || caption[1] != 2) return 1;

    /* A label outside [0, k) is an error that names the offending entry. */
    const int64_t bad[N] = {0, 0, 5, 1, 1, 1};
    if (rateclust_label_clusters(image, N, DIM, bad, K, text, NTEXT, NULL, caption, NULL) != RATECLUST_STATUS_INVALID_ARGUMENT ||
        strstr(rateclust_last_error(), "labels[2]") == NULL) {
        fprintf(stderr, "expected an error naming labels[2], got: %s\n", rateclust_last_error());
        return 1;
    }

    char name[64];
    size_t needed = 0;
    size_t size = rateclust_default_vocabulary_size();
    if (size < 900 || rateclust_default_vocabulary_name(0, name, sizeof name, &needed) != RATECLUST_STATUS_OK) return 1;
    printf("default vocabulary: %zu names, first '%s'\n", size, name);
    return strcmp(name, "tench") == 0 ? 0 : 1;
}
