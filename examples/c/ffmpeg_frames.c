/* Labels every frame of a video decoded by FFmpeg against a saved clusterer: FFmpeg writes raw RGB24 frames
 * to a pipe, this program reads them one at a time and embeds + assigns each (examples/c/frame_labeler.h).
 *
 *   cc -Iinclude examples/c/ffmpeg_frames.c -Ltarget/release -lrateclust -o ffmpeg_frames
 *   ffmpeg -loglevel error -i video.mp4 -vf scale=224:224 -f rawvideo -pix_fmt rgb24 - \
 *     | ./ffmpeg_frames CLIP_DIR clusterer.safetensors 224 224
 *
 * WIDTH HEIGHT must be the size of the frames FFmpeg writes (fix it with -vf scale=W:H). Prints one line per
 * frame and a latency summary; exits non-zero on a short final frame or any library error. */
#include "frame_labeler.h"

#include <errno.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: ffmpeg ... -f rawvideo -pix_fmt rgb24 - | %s CLIP_DIR CLUSTERER WIDTH HEIGHT\n", argv[0]);
        return 2;
    }
    char *end = NULL;
    unsigned long width = strtoul(argv[3], &end, 10), height = 0;
    if (*end == '\0') height = strtoul(argv[4], &end, 10);
    if (*end != '\0' || width == 0 || height == 0 || width > 16384 || height > 16384) {
        fprintf(stderr, "WIDTH and HEIGHT must be whole numbers in 1..16384, got %s %s\n", argv[3], argv[4]);
        return 2;
    }
    size_t frame_bytes = (size_t)width * height * 3;
    uint8_t *frame = malloc(frame_bytes);
    if (!frame) {
        fprintf(stderr, "out of memory for a %lux%lu frame\n", width, height);
        return 1;
    }
    frame_labeler fl;
    int rc = frame_labeler_open(&fl, argv[1], argv[2]);
    while (rc == 0) {
        size_t got = fread(frame, 1, frame_bytes, stdin);
        if (got == 0 && feof(stdin)) break;
        if (got != frame_bytes) {
            fprintf(stderr, "short frame: %zu of %zu bytes (%s); is the size %lux%lu right?\n", got, frame_bytes,
                    ferror(stdin) ? strerror(errno) : "end of stream", width, height);
            rc = 1;
            break;
        }
        rc = frame_labeler_push(&fl, frame, (uint32_t)width, (uint32_t)height, (size_t)width * 3, RATECLUST_PIXEL_FORMAT_RGB8);
    }
    frame_labeler_close(&fl);
    free(frame);
    return rc;
}
