/* Embeds an image (from a file, from its encoded bytes, and as raw RGB8 / BGR8 / RGBA8 frames) and some
 * texts with a CLIP model directory, then prints the image-text cosine similarities.
 *
 *   cc -Iinclude examples/c/embed.c -Ltarget/release -lrateclust -lm -o embed
 *   ./embed MODEL_DIR IMAGE.png
 *
 * Prints "image: v0 v1 ..." (the normalised embedding of IMAGE.png) and "text i: cos" lines; exits non-zero
 * if any check fails. */
#include <rateclust.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                   \
    do {                                                                              \
        rateclust_status st_ = (call);                                                \
        if (st_ != RATECLUST_STATUS_OK) {                                             \
            fprintf(stderr, "%s failed (%d): %s\n", #call, (int)st_, rateclust_last_error()); \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

static int max_diff_ok(const float *a, const float *b, size_t n, float tol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (fabsf(a[i] - b[i]) > tol) {
            fprintf(stderr, "%s differs at %zu: %g vs %g\n", what, i, a[i], b[i]);
            return 0;
        }
    }
    return 1;
}

static int progress_calls = 0;
static int count_progress(void *user, const char *stage, uint64_t done, uint64_t total) {
    (void)user;
    (void)stage;
    (void)done;
    (void)total;
    progress_calls++;
    return 0;
}
static int cancel_progress(void *user, const char *stage, uint64_t done, uint64_t total) {
    (void)user;
    (void)stage;
    (void)done;
    (void)total;
    return 1;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)len;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR IMAGE\n", argv[0]);
        return 2;
    }
    rateclust_model *model = NULL;
    CHECK(rateclust_model_load(argv[1], RATECLUST_DEVICE_KIND_AUTO, &model));
    size_t dim = 0;
    CHECK(rateclust_model_embed_dim(model, &dim));
    printf("embed dim: %zu\n", dim);

    rateclust_embed_params params = rateclust_embed_default_params();
    params.progress = count_progress;

    /* 1. From the file. */
    float *img = calloc(dim, sizeof(float));
    const char *paths[1] = {argv[2]};
    CHECK(rateclust_embed_image_files(model, paths, 1, &params, img, dim));
    if (progress_calls == 0) {
        fprintf(stderr, "the progress callback was never called\n");
        return 1;
    }
    printf("image:");
    for (size_t i = 0; i < dim; i++) printf(" %.8g", img[i]);
    printf("\n");

    /* 2. From the encoded bytes: identical. */
    size_t size = 0;
    unsigned char *bytes = read_file(argv[2], &size);
    if (!bytes) return 1;
    const uint8_t *blobs[1] = {bytes};
    float *img2 = calloc(dim, sizeof(float));
    CHECK(rateclust_embed_images_encoded(model, blobs, &size, 1, NULL, img2, dim));
    if (!max_diff_ok(img, img2, dim, 0.0f, "encoded bytes vs file")) return 1;

    /* 3. Raw frames of a synthetic 50x40 picture: RGB8 with padded rows, the same as BGR8 and as opaque
     *    RGBA8 must embed identically. */
    enum { W = 50, H = 40 };
    size_t stride3 = W * 3 + 7, stride4 = W * 4;
    uint8_t *rgb = calloc(H * stride3, 1), *bgr = calloc(H * stride3, 1), *rgba = calloc(H * stride4, 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t r = (uint8_t)(x * 5), g = (uint8_t)(y * 6), b = (uint8_t)((x * y) & 255);
            uint8_t *p = rgb + y * stride3 + x * 3, *q = bgr + y * stride3 + x * 3, *s = rgba + y * stride4 + x * 4;
            p[0] = r, p[1] = g, p[2] = b;
            q[0] = b, q[1] = g, q[2] = r;
            s[0] = r, s[1] = g, s[2] = b, s[3] = 255;
        }
    rateclust_frame frames[3] = {
        {rgb, W, H, stride3, RATECLUST_PIXEL_FORMAT_RGB8},
        {bgr, W, H, stride3, RATECLUST_PIXEL_FORMAT_BGR8},
        {rgba, W, H, stride4, RATECLUST_PIXEL_FORMAT_RGBA8},
    };
    float *fr = calloc(3 * dim, sizeof(float));
    CHECK(rateclust_embed_frames(model, frames, 3, NULL, fr, 3 * dim));
    if (!max_diff_ok(fr, fr + dim, dim, 0.0f, "BGR8 vs RGB8") || !max_diff_ok(fr, fr + 2 * dim, dim, 0.0f, "RGBA8 vs RGB8"))
        return 1;

    /* A frame whose stride is shorter than a row, or an unknown format, is an argument error. */
    rateclust_frame bad = {rgb, W, H, W * 3 - 1, RATECLUST_PIXEL_FORMAT_RGB8};
    if (rateclust_embed_frames(model, &bad, 1, NULL, fr, dim) != RATECLUST_STATUS_INVALID_ARGUMENT ||
        strstr(rateclust_last_error(), "frames[0]") == NULL) {
        fprintf(stderr, "a short stride was not reported: %s\n", rateclust_last_error());
        return 1;
    }
    bad.stride_bytes = stride3;
    bad.format = 99;
    if (rateclust_embed_frames(model, &bad, 1, NULL, fr, dim) != RATECLUST_STATUS_INVALID_ARGUMENT) return 1;
    /* Encoded bytes that are not an image are a format error naming the item. */
    const uint8_t junk[4] = {1, 2, 3, 4};
    const uint8_t *junk_blobs[1] = {junk};
    size_t junk_size = sizeof junk;
    if (rateclust_embed_images_encoded(model, junk_blobs, &junk_size, 1, NULL, img2, dim) != RATECLUST_STATUS_FORMAT ||
        strstr(rateclust_last_error(), "image 0") == NULL) {
        fprintf(stderr, "junk bytes were not a format error: %s\n", rateclust_last_error());
        return 1;
    }

    /* Preprocessed pixels, and the pooled (pre-projection) output's width. */
    size_t side = 0, pooled_dim = 0;
    CHECK(rateclust_model_image_size(model, &side));
    rateclust_embed_params pooled = rateclust_embed_default_params();
    pooled.pooled = true;
    CHECK(rateclust_model_output_dim(model, true, &pooled, &pooled_dim));
    printf("image size: %zu, pooled image width: %zu\n", side, pooled_dim);
    float *px = calloc(3 * side * side, sizeof(float));
    float *pooled_out = calloc(pooled_dim, sizeof(float));
    for (size_t i = 0; i < 3 * side * side; i++) px[i] = (float)((i % 17) - 8) / 8.0f;
    CHECK(rateclust_embed_pixels(model, px, 1, &pooled, pooled_out, pooled_dim));
    double pn = 0;
    for (size_t i = 0; i < pooled_dim; i++) pn += (double)pooled_out[i] * pooled_out[i];
    if (fabs(pn - 1.0) > 1e-4) return 1;

    /* 4. Texts, and their cosine with the image (rows are L2-normalised). */
    const char *texts[3] = {"a photo of a cat", "a photo of a dog", "a diagram"};
    float *txt = calloc(3 * dim, sizeof(float));
    CHECK(rateclust_embed_texts(model, texts, 3, &params, txt, 3 * dim));
    for (int t = 0; t < 3; t++) {
        double dot = 0, norm = 0;
        for (size_t i = 0; i < dim; i++) {
            dot += (double)img[i] * txt[t * dim + i];
            norm += (double)txt[t * dim + i] * txt[t * dim + i];
        }
        if (fabs(norm - 1.0) > 1e-4) {
            fprintf(stderr, "text %d is not normalised (norm² %g)\n", t, norm);
            return 1;
        }
        printf("text %d: %.6f\n", t, dot);
    }

    /* 5. Errors are statuses with messages, never crashes. */
    if (rateclust_embed_texts(model, texts, 3, NULL, txt, 3 * dim - 1) != RATECLUST_STATUS_INVALID_ARGUMENT ||
        strstr(rateclust_last_error(), "out_len") == NULL) {
        fprintf(stderr, "a too small output buffer was not reported: %s\n", rateclust_last_error());
        return 1;
    }
    const char *missing[1] = {"/nonexistent/image.png"};
    if (rateclust_embed_image_files(model, missing, 1, NULL, img2, dim) != RATECLUST_STATUS_IO) {
        fprintf(stderr, "a missing file was not an I/O error: %s\n", rateclust_last_error());
        return 1;
    }
    params.progress = cancel_progress;
    if (rateclust_embed_texts(model, texts, 3, &params, txt, 3 * dim) != RATECLUST_STATUS_CANCELLED) {
        fprintf(stderr, "cancelling from the progress callback did not stop the call\n");
        return 1;
    }
    rateclust_model *none = NULL;
    if (rateclust_model_load("/nonexistent", RATECLUST_DEVICE_KIND_CPU, &none) == RATECLUST_STATUS_OK || none != NULL) return 1;
    if (rateclust_model_load(argv[1], 7, &none) != RATECLUST_STATUS_INVALID_ARGUMENT || none != NULL) return 1;

    free(px), free(pooled_out);
    free(img), free(img2), free(bytes), free(rgb), free(bgr), free(rgba), free(fr), free(txt);
    rateclust_model_free(model);
    rateclust_model_free(NULL);
    printf("ok\n");
    return 0;
}
