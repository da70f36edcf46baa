/* Monotonic clock helpers. */
#include "ig_time.h"

#include <time.h>

uint64_t ig_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ig_now_ms(void)
{
    return ig_now_us() / 1000u;
}

int64_t ig_unix_s(void)
{
    return (int64_t)time(NULL);
}
