/* Prints the library version and which device RATECLUST_DEVICE_KIND_AUTO would use, then checks that the
 * C boundary reports bad arguments as a status with a message. Build:
 *   cc -Iinclude examples/c/device_info.c -Ltarget/release -lrateclust -o device_info */
#include <rateclust.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    printf("rateclust %s (ABI %u)\n", rateclust_version(), rateclust_abi_version());
    printf("CUDA devices: %u\n", rateclust_device_count());

    char info[256];
    size_t needed = 0;
    rateclust_status st = rateclust_device_info(RATECLUST_DEVICE_KIND_AUTO, 0, info, sizeof info, &needed);
    if (st != RATECLUST_STATUS_OK) {
        fprintf(stderr, "device_info failed: %s\n", rateclust_last_error());
        return 1;
    }
    printf("auto device: %s\n", info);

    /* A NULL output pointer must be an error with a message, not a crash. */
    st = rateclust_cpu_threads(NULL);
    if (st != RATECLUST_STATUS_INVALID_ARGUMENT || strstr(rateclust_last_error(), "out") == NULL) {
        fprintf(stderr, "expected INVALID_ARGUMENT naming `out`, got %d: %s\n", (int)st, rateclust_last_error());
        return 1;
    }
    /* Enum arguments travel as uint32_t and are validated: an unknown device kind is an error, not UB. */
    if (rateclust_device_info(7, 0, info, sizeof info, NULL) != RATECLUST_STATUS_INVALID_ARGUMENT) {
        fprintf(stderr, "expected INVALID_ARGUMENT for device kind 7\n");
        return 1;
    }
    uint32_t threads = 0;
    if (rateclust_cpu_threads(&threads) != RATECLUST_STATUS_OK || threads == 0) return 1;
    if (rateclust_last_error()[0] != '\0') return 1; /* success clears the message */
    printf("cpu threads: %u\n", threads);
    return 0;
}
