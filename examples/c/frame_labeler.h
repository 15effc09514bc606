/* Labels video frames one at a time against a saved clusterer: the part the FFmpeg and GStreamer examples
 * share (examples/c/ffmpeg_frames.c, examples/c/gst_frames.c). Header-only so each example stays one
 * compile command.
 *
 * frame_labeler_open() loads the CLIP directory and the clusterer once and allocates every buffer a frame
 * needs; frame_labeler_push() embeds one raw frame (rateclust_embed_frames) and assigns it
 * (rateclust_assign), prints "frame I: cluster C confidence F" and records the latency of the two calls;
 * frame_labeler_close() prints the latency summary ("latency ms: n N mean M p50 P p95 Q max X") and frees. */
#ifndef RATECLUST_FRAME_LABELER_H
#define RATECLUST_FRAME_LABELER_H

/* clock_gettime under -std=c11 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <rateclust.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    rateclust_model *model;
    rateclust_clusterer *clusterer;
    size_t dim;
    float *embedding; /* dim floats, reused for every frame */
    double *latency_ms;
    size_t frames, capacity;
} frame_labeler;

static int frame_labeler_fail(const char *what) {
    fprintf(stderr, "%s failed: %s\n", what, rateclust_last_error());
    return 1;
}

static double frame_labeler_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int frame_labeler_open(frame_labeler *fl, const char *clip_dir, const char *clusterer_path) {
    fl->model = NULL;
    fl->clusterer = NULL;
    fl->embedding = NULL;
    fl->latency_ms = NULL;
    fl->frames = fl->capacity = 0;
    /* Frames only need the vision tower: the text tower's weights are never read. */
    if (rateclust_model_load_towers(clip_dir, RATECLUST_DEVICE_KIND_AUTO, RATECLUST_TOWERS_IMAGES, &fl->model) != RATECLUST_STATUS_OK)
        return frame_labeler_fail("loading the CLIP model");
    if (rateclust_clusterer_load(clusterer_path, &fl->clusterer) != RATECLUST_STATUS_OK) return frame_labeler_fail("loading the clusterer");
    size_t width = 0;
    if (rateclust_model_output_dim(fl->model, true, NULL, &width) != RATECLUST_STATUS_OK) return frame_labeler_fail("rateclust_model_output_dim");
    if (rateclust_clusterer_info(fl->clusterer, NULL, &fl->dim) != RATECLUST_STATUS_OK) return frame_labeler_fail("rateclust_clusterer_info");
    if (width != fl->dim) {
        fprintf(stderr, "the clusterer was fitted on %zu-d features but the model embeds into %zu\n", fl->dim, width);
        return 1;
    }
    fl->embedding = malloc(fl->dim * sizeof(float));
    fl->capacity = 1024;
    fl->latency_ms = malloc(fl->capacity * sizeof(double));
    if (!fl->embedding || !fl->latency_ms) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    return 0;
}

/* `data`: height rows of `stride` bytes in `format` (a rateclust_pixel_format). */
static int frame_labeler_push(frame_labeler *fl, const uint8_t *data, uint32_t width, uint32_t height, size_t stride, uint32_t format) {
    rateclust_frame frame = {data, width, height, stride, format};
    int64_t label = -1;
    float confidence = 0.0f;
    double t0 = frame_labeler_now_ms();
    if (rateclust_embed_frames(fl->model, &frame, 1, NULL, fl->embedding, fl->dim) != RATECLUST_STATUS_OK) return frame_labeler_fail("rateclust_embed_frames");
    if (rateclust_assign(fl->clusterer, fl->embedding, 1, fl->dim, RATECLUST_DEVICE_KIND_AUTO, &label, &confidence, NULL, NULL) != RATECLUST_STATUS_OK)
        return frame_labeler_fail("rateclust_assign");
    double ms = frame_labeler_now_ms() - t0;
    if (fl->frames == fl->capacity) {
        double *grown = realloc(fl->latency_ms, 2 * fl->capacity * sizeof(double));
        if (!grown) return frame_labeler_fail("growing the latency log");
        fl->latency_ms = grown;
        fl->capacity *= 2;
    }
    fl->latency_ms[fl->frames] = ms;
    printf("frame %zu: cluster %lld confidence %.4f\n", fl->frames, (long long)label, confidence);
    fl->frames++;
    return 0;
}

static int frame_labeler_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void frame_labeler_close(frame_labeler *fl) {
    if (fl->frames > 0) {
        double sum = 0.0;
        for (size_t i = 0; i < fl->frames; i++) sum += fl->latency_ms[i];
        qsort(fl->latency_ms, fl->frames, sizeof(double), frame_labeler_cmp);
        printf("latency ms (embed + assign, one frame a call): n %zu mean %.2f p50 %.2f p95 %.2f max %.2f\n", fl->frames, sum / (double)fl->frames,
               fl->latency_ms[fl->frames / 2], fl->latency_ms[(fl->frames * 95) / 100 < fl->frames ? (fl->frames * 95) / 100 : fl->frames - 1],
               fl->latency_ms[fl->frames - 1]);
    }
    free(fl->embedding);
    free(fl->latency_ms);
    rateclust_clusterer_free(fl->clusterer);
    rateclust_model_free(fl->model);
}

#endif
