/*
 * libFuzzer harness: the gateway's token meter (src/gateway/gw_meter.c), which parses
 * upstream output as it passes: server-sent events line by line and JSON bodies, for
 * usage, timings and content chunks. Byte 0 picks streaming or not and where the input is
 * split into feeds; the rest is the upstream's response body.
 */
#include "gw_meter.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_meter m;
    uint64_t prompt = 0, completion = 0;
    size_t step;

    if (size == 0)
        return 0;
    step = (size_t)(data[0] >> 1) + 1; /* 1..128 bytes a feed */
    gw_meter_init(&m, (data[0] & 1) != 0, 5);
    for (size_t i = 1; i < size; i += step)
        gw_meter_feed(&m, (const char *)data + i, size - i < step ? size - i : step);
    gw_meter_finish(&m, &prompt, &completion);
    return 0;
}
