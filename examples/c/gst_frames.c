/* Labels every frame a GStreamer pipeline delivers to an appsink against a saved clusterer (embed + assign
 * per frame: examples/c/frame_labeler.h). The pipeline is any gst-launch description ending in an appsink
 * named "sink"; this program asks it for RGB frames.
 *
 *   cc -Iinclude examples/c/gst_frames.c $(pkg-config --cflags --libs gstreamer-app-1.0 gstreamer-video-1.0) \
 *     -Ltarget/release -lrateclust -o gst_frames
 *   ./gst_frames CLIP_DIR clusterer.safetensors \
 *     'filesrc location=video.avi ! decodebin ! videoconvert ! videoscale ! appsink name=sink'
 *
 * Prints one line per frame and a latency summary; exits non-zero on a pipeline error or a library error. */
#include "frame_labeler.h"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

static int pipeline_error(GstElement *pipeline) {
    GstBus *bus = gst_element_get_bus(pipeline);
    GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    int failed = 0;
    if (msg) {
        GError *err = NULL;
        gchar *debug = NULL;
        gst_message_parse_error(msg, &err, &debug);
        fprintf(stderr, "pipeline error: %s (%s)\n", err ? err->message : "?", debug ? debug : "");
        g_clear_error(&err);
        g_free(debug);
        gst_message_unref(msg);
        failed = 1;
    }
    gst_object_unref(bus);
    return failed;
}

int main(int argc, char **argv) {
    gst_init(&argc, &argv);
    if (argc != 4) {
        fprintf(stderr, "usage: %s CLIP_DIR CLUSTERER 'GST-LAUNCH PIPELINE ! appsink name=sink'\n", argv[0]);
        return 2;
    }
    GError *error = NULL;
    GstElement *pipeline = gst_parse_launch(argv[3], &error);
    if (!pipeline || error) {
        fprintf(stderr, "bad pipeline: %s\n", error ? error->message : "?");
        return 2;
    }
    GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
    if (!sink || !GST_IS_APP_SINK(sink)) {
        fprintf(stderr, "the pipeline has no appsink named \"sink\"\n");
        return 2;
    }
    /* Packed RGB is what rateclust_embed_frames takes without a conversion of its own. */
    GstCaps *caps = gst_caps_from_string("video/x-raw,format=RGB");
    gst_app_sink_set_caps(GST_APP_SINK(sink), caps);
    gst_caps_unref(caps);
    g_object_set(sink, "sync", FALSE, NULL);

    frame_labeler fl;
    int rc = frame_labeler_open(&fl, argv[1], argv[2]);
    if (rc == 0 && gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        pipeline_error(pipeline);
        fprintf(stderr, "the pipeline did not start\n");
        rc = 1;
    }
    while (rc == 0) {
        GstSample *sample = gst_app_sink_pull_sample(GST_APP_SINK(sink));
        if (!sample) { /* end of stream, or an error */
            rc = pipeline_error(pipeline);
            break;
        }
        GstVideoInfo info;
        GstMapInfo map;
        GstBuffer *buffer = gst_sample_get_buffer(sample);
        if (!gst_video_info_from_caps(&info, gst_sample_get_caps(sample)) || !gst_buffer_map(buffer, &map, GST_MAP_READ)) {
            fprintf(stderr, "could not read a frame's caps or memory\n");
            gst_sample_unref(sample);
            rc = 1;
            break;
        }
        /* Rows may be padded: GStreamer aligns RGB strides to 4 bytes. */
        rc = frame_labeler_push(&fl, map.data, (uint32_t)GST_VIDEO_INFO_WIDTH(&info), (uint32_t)GST_VIDEO_INFO_HEIGHT(&info),
                                (size_t)GST_VIDEO_INFO_PLANE_STRIDE(&info, 0), RATECLUST_PIXEL_FORMAT_RGB8);
        gst_buffer_unmap(buffer, &map);
        gst_sample_unref(sample);
    }
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
    frame_labeler_close(&fl);
    return rc;
}
