/* Numbers written for people: binary units for sizes, the two largest units for durations. */
#include "cli_fmt.h"

#include <stdio.h>

void cli_fmt_bytes(uint64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    size_t u = 0;

    if (bytes < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
        return;
    }
    v /= 1024;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (v < 10)
        snprintf(buf, size, "%.2f %s", v, units[u]);
    else if (v < 100)
        snprintf(buf, size, "%.1f %s", v, units[u]);
    else
        snprintf(buf, size, "%.0f %s", v, units[u]);
}

void cli_fmt_duration(double seconds, char *buf, size_t size)
{
    unsigned long long s;

    if (seconds < 0) {
        snprintf(buf, size, "-");
        return;
    }
    if (seconds < 10) {
        snprintf(buf, size, "%.1fs", seconds);
        return;
    }
    s = (unsigned long long)(seconds + 0.5);
    if (s < 60)
        snprintf(buf, size, "%llus", s);
    else if (s < 3600)
        snprintf(buf, size, "%llum%02llus", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, size, "%lluh%02llum", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, size, "%llud%02lluh", s / 86400, s % 86400 / 3600);
}

void cli_fmt_rate(double per_s, char *buf, size_t size)
{
    if (per_s < 0)
        snprintf(buf, size, "-");
    else if (per_s < 10)
        snprintf(buf, size, "%.2f", per_s);
    else if (per_s < 100)
        snprintf(buf, size, "%.1f", per_s);
    else
        snprintf(buf, size, "%.0f", per_s);
}
